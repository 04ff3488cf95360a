#!/bin/bash
f() { f "$@" "$@"; }
f start
exec /usr/local/bin/app
