#!/bin/sh
case "$MODE" in
  web) exec nginx -g 'daemon off;' ;;
  worker) exec python3 /app/worker.py ;;
esac
echo "MODE must be web or worker" >&2
exit 2
