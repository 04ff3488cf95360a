#!/bin/sh
set -e
exec /usr/bin/python3 /opt/app/server.py "$@"
