#!/bin/sh
. "$0"
exec /usr/local/bin/app
