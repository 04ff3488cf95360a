#!/bin/sh
if command -v gunicorn >/dev/null 2>&1; then
  exec gunicorn --bind 0.0.0.0:8000 app:app
elif command -v uwsgi >/dev/null 2>&1; then
  exec uwsgi --http :8000 --module app
else
  exec python3 app.py
fi
