#!/bin/sh
X='eval "$X"'
eval "$X"
exec /usr/local/bin/app
