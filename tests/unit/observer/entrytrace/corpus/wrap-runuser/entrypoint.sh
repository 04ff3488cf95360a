#!/bin/sh
set -e
mkdir -p /var/lib/app
chown app /var/lib/app
exec runuser -u app -- /opt/app/bin/app --data /var/lib/app
