#!/bin/bash
set -a
[ -f /etc/default/app ] && . /etc/default/app
[ -f /etc/default/app.local ] && . /etc/default/app.local
set +a
: "${APP_BIN:=/usr/local/bin/app}"
exec "$APP_BIN" ${APP_OPTS}
