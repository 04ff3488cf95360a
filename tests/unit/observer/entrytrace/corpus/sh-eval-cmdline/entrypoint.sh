#!/bin/sh
set -e
# the command line comes from the environment and is eval'ed to honour its quoting
eval "set -- $SERVER_ARGS"
eval "exec haproxy -W -db \"\$@\""
