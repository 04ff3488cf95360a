#!/bin/sh
i=0
while true; do
  i=$((i + 1))
done
exec /usr/local/bin/app
