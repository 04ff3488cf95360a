#!/bin/bash
set -euo pipefail

role="${1:-web}"
shift || true

case "$role" in
  web)
    exec gunicorn --config /etc/gunicorn.py app.wsgi
    ;;
  worker)
    exec celery -A app worker --loglevel="${LOG_LEVEL:-info}" "$@"
    ;;
  beat)
    exec celery -A app beat "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
