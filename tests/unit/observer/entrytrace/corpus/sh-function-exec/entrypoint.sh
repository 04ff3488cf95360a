#!/bin/sh
set -e

log() { printf '[entrypoint] %s\n' "$*"; }

start_server() {
  local bin="$1"
  shift
  log "starting $bin"
  exec "$bin" "$@"
}

wait_for_config() {
  if [ ! -f /etc/nginx/nginx.conf ]; then
    log "no configuration"
    return 1
  fi
  return 0
}

wait_for_config
start_server /usr/sbin/nginx -g 'daemon off;'
