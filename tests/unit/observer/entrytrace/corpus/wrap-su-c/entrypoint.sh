#!/bin/sh
set -e
exec su app -s /bin/sh -c "exec /opt/app/bin/app --port ${PORT:-8080}"
