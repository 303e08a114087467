#!/bin/sh
# The sidecar image's entry point: `tailboard serve /logs` on every interface at $TAILBOARD_PORT (6007
# unless set; the image's HEALTHCHECK asks the same port), with the token from $TAILBOARD_TOKEN or
# from a mounted secret file, and any flags the container is given (`--poll`, ...) after these.
#
# The secret file is $TAILBOARD_TOKEN_FILE, else /run/secrets/tailboard_token (where compose mounts
# a secret of that name). A file named in $TAILBOARD_TOKEN_FILE that cannot be read stops the
# container: starting with a random token instead would lock out everyone who was given the real one.
set -eu
if [ -z "${TAILBOARD_TOKEN:-}" ]; then
  file=${TAILBOARD_TOKEN_FILE:-/run/secrets/tailboard_token}
  if [ -r "$file" ]; then
    # $(...) drops the trailing newline most secret files end with
    TAILBOARD_TOKEN=$(cat "$file")
    export TAILBOARD_TOKEN
  elif [ -n "${TAILBOARD_TOKEN_FILE:-}" ]; then
    echo "tailboard: cannot read the token file $file (uid $(id -u), gid $(id -g))" >&2
    exit 2
  fi
fi
exec tailboard serve /logs --host 0.0.0.0 --port "${TAILBOARD_PORT:-6007}" "$@"
