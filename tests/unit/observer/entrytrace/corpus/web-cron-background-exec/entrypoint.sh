#!/bin/sh
set -e
# scheduler in the background, web server in the foreground
cron -f &
exec apache2-foreground "$@"
