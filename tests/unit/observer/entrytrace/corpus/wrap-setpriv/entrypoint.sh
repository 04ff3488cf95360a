#!/bin/bash
set -e
if [[ $EUID -eq 0 ]]; then
  exec setpriv --reuid=1001 --regid=1001 --init-groups --inh-caps=-all "$@"
fi
exec "$@"
