#!/bin/sh
set -e
if [ -d /etc/entrypoint.d ]; then
  run-parts --exit-on-error --verbose /etc/entrypoint.d
fi
exec "$@"
