#!/bin/sh
set -eu
# JAVA_OPTS is split on purpose
if [ -n "${JAVA_HEAP:-}" ]; then
  JAVA_OPTS="$JAVA_OPTS -Xmx$JAVA_HEAP"
fi
exec "$JAVA_HOME/bin/java" $JAVA_OPTS -Djava.security.egd=file:/dev/./urandom -jar /opt/app/app.jar "$@"
