#!/bin/sh
set -e
python -m django_migrate_check || true
exec python -m gunicorn --bind "0.0.0.0:${PORT:-8000}" --workers "${WORKERS:-2}" config.wsgi:application
