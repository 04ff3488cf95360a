#!/bin/sh
set -e
exec sleep 1000000
