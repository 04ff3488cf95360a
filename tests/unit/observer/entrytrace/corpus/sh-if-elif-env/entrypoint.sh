#!/bin/sh
set -e
if [ "$ROLE" = "primary" ]; then
  exec redis-server /etc/redis/primary.conf
elif [ "$ROLE" = "replica" ] && [ -n "$PRIMARY_HOST" ]; then
  exec redis-server /etc/redis/replica.conf --replicaof "$PRIMARY_HOST" 6379
elif [ "$ROLE" = "sentinel" ]; then
  exec redis-server /etc/redis/sentinel.conf --sentinel
else
  echo "unknown ROLE=$ROLE" >&2
  exit 1
fi
