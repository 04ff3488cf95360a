#!/bin/sh
set -e
if [ "$(id -u)" = "0" ]; then
	chown -R app:app /app/data
	exec su-exec app:app "$0" "$@"
fi
exec /usr/local/bin/app "$@"
