#!/bin/sh
# A cyclic publisher built on the holdfast CLI: simulated sensor readings every interval, through
# holdfast's QoS 2 queue and LMDB cache. Stop it with Ctrl-C or SIGTERM: pending readings are
# spilled to the cache and sent first on the next start.
#
#   HOLDFAST_BROKER=mqtt://broker:1883 HOLDFAST_CLIENT_ID=cabinet-017 examples/cyclic-publisher.sh
#
# Settings (environment): HOLDFAST_BROKER (default mqtt://127.0.0.1:1883), HOLDFAST_CLIENT_ID
# (default cyclic-<hostname>), HOLDFAST_CACHE_DIR (./holdfast-cache), INTERVAL (1s), COUNT (messages per
# device, then exit once delivered; unset: run until stopped), PROFILE (sensor), DEVICES (1). HOLDFAST_PASSWORD, when set, is the broker password.
# HOLDFAST_CLI overrides the command (default: `holdfast` on PATH, else this checkout's build).
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ -n "${HOLDFAST_CLI:-}" ]; then
  cli=$HOLDFAST_CLI
elif command -v holdfast >/dev/null 2>&1; then
  cli=holdfast
else
  cli="node $here/../packages/cli/dist/bin.js"
fi

set -- publish \
  --broker "${HOLDFAST_BROKER:-mqtt://127.0.0.1:1883}" \
  --client-id "${HOLDFAST_CLIENT_ID:-cyclic-$(hostname)}" \
  --cache-dir "${HOLDFAST_CACHE_DIR:-./holdfast-cache}" \
  --interval "${INTERVAL:-1s}" \
  --profile "${PROFILE:-sensor}" \
  --devices "${DEVICES:-1}"
if [ -n "${COUNT:-}" ]; then
  set -- "$@" --count "$COUNT"
fi

# exec: the publisher gets SIGTERM/SIGINT directly and closes gracefully.
# shellcheck disable=SC2086 # $cli may be "node path/to/bin.js"
exec $cli "$@"
