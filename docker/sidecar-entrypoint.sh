#!/bin/sh
# The sidecar image's entry point: `tailboard serve /logs` on every interface at $TAILBOARD_PORT (6007
# unless set; the image's HEALTHCHECK asks the same port), with the token from $TAILBOARD_TOKEN or
# from a mounted secret file, and any flags the container is given (`--poll`, ...) after these.
#
# The secret file is $TAILBOARD_TOKEN_FILE (tailboard reads it itself, and stops with exit code 2
# when it cannot: starting with a random token instead would lock out everyone given the real one),
# else /run/secrets/tailboard_token when present (where compose mounts a secret of that name),
# passed as --token-file so that the token is never in the environment nor in `ps`.
set -eu
set --  --host 0.0.0.0 --port "${TAILBOARD_PORT:-6007}" "$@"
default=/run/secrets/tailboard_token
if [ -z "${TAILBOARD_TOKEN:-}" ] && [ -z "${TAILBOARD_TOKEN_FILE:-}" ] && [ -r "$default" ]; then
  set -- --token-file "$default" "$@"
fi
exec tailboard serve /logs "$@"
