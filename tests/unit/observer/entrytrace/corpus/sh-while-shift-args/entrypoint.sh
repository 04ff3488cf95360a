#!/bin/bash
set -euo pipefail

PORT=8080
LOG_LEVEL=info
EXTRA=()

usage() {
  echo "usage: $0 [--port N] [--debug] [-- args]" >&2
  exit 64
}

while [ $# -gt 0 ]; do
  case "$1" in
    --port)
      PORT="$2"
      shift 2
      ;;
    --port=*)
      PORT="${1#*=}"
      shift
      ;;
    --debug)
      LOG_LEVEL=debug
      shift
      ;;
    --)
      shift
      EXTRA=("$@")
      break
      ;;
    -h|--help)
      usage
      ;;
    *)
      EXTRA+=("$1")
      shift
      ;;
  esac
done

exec /usr/local/bin/app --listen ":${PORT}" --log-level "$LOG_LEVEL" "${EXTRA[@]}"
