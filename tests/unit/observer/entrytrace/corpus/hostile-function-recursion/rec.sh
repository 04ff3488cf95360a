#!/bin/bash
f() { f "$@" x; }
f start
exec /usr/local/bin/app
