#!/bin/sh
echo "starting cache"
mkdir -p /var/lib/cache
/usr/local/bin/redis-server /etc/redis.conf
echo "cache stopped"
