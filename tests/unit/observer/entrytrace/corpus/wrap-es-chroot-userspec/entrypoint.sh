#!/bin/bash
set -e

# Files created by the search engine should always be group writable too
umask 0002

# Allow user specify custom CMD, maybe bin/elasticsearch itself
# for example to directly specify `-E` style parameters
if [[ "$1" != "eswrapper" && "$1" != "elasticsearch" ]]; then
  if [[ "$(id -u)" == "0" && $(basename "$1") == "elasticsearch" ]]; then
    # centos:7 chroot doesn't have the `--skip-chdir` option
    set -- "elasticsearch" "${@:2}"
    exec chroot --userspec=1002:0 / "$@"
  else
    exec "$@"
  fi
fi

if [[ -f bin/elasticsearch-users ]]; then
  echo "users file present"
fi

if [[ "$(id -u)" == "0" ]]; then
  exec chroot --userspec=1002:0 / /usr/share/elasticsearch/bin/elasticsearch "${@:2}"
fi
exec /usr/share/elasticsearch/bin/elasticsearch "${@:2}"
