#!/bin/sh
set -e

NGINX_BIN=nginx
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in /docker-entrypoint.d/*; do
        case "$f" in
            *.envsh) . "$f" ;;
            *.sh)
                if [ -x "$f" ]; then
                    "$f"
                else
                    . "$f"
                fi
                ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done
    shift
    set -- "$NGINX_BIN" "$@"
fi

exec "$@"
