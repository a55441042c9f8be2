#!/usr/bin/env bash
# Load test of `trainer serve` on loopback: wrk with 32 connections for DURATION
# (default 30s) POSTing JSON pixels to /api/predict. Fails unless every request got
# a 2xx and the server then stops cleanly on SIGTERM.
#
#   tests/load/run.sh RUN_DIR [DURATION]      (TRAINER_BIN overrides target/release/trainer)
set -euo pipefail
model=${1:?usage: tests/load/run.sh RUN_DIR [DURATION]}
duration=${2:-30s}
bin=${TRAINER_BIN:-target/release/trainer}
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
"$bin" serve --run "$model" --addr 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
url=
for _ in $(seq 300); do
  url=$(sed -n 's/^listening on //p' "$log")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "the server exited"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not listen within 30 s"; exit 1; }

out=$(wrk -t 2 -c 32 -d "$duration" --latency -s "$here/predict.lua" "$url/api/predict")
echo "$out"
result=$(grep '^RESULT' <<<"$out")
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || { cat "$log"; echo "the server ended with status $status on SIGTERM"; exit 1; }
grep -q ' socket_errors=0 non_2xx=0$' <<<"$result" || { echo "errors under load: $result"; exit 1; }
grep -q ' requests=0 ' <<<"$result" && { echo "no request completed"; exit 1; }
echo "load test passed: $result"
