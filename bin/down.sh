#!/usr/bin/env bash
# Stop the gateway that runs on this data dir (it stops its own Temporal and PostgreSQL).
set -euo pipefail
DATA_DIR="${PMP_DATA_DIR:-$HOME/.local/share/pmp-gateway}"
PIDFILE="$DATA_DIR/gateway.pid"
if [ ! -f "$PIDFILE" ]; then
  echo "no gateway is running on $DATA_DIR"
  exit 0
fi
pid="$(cat "$PIDFILE")"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "no gateway is running on $DATA_DIR (stale $PIDFILE)"
  rm -f "$PIDFILE"
  exit 0
fi
running() {  # alive and not a zombie waiting for its parent to reap it
  kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != "Z" ]
}
kill -TERM "$pid"
for _ in $(seq 1 120); do
  running || { echo "stopped"; exit 0; }
  sleep 0.5
done
echo "pmp-gateway (pid $pid) did not stop within 60 s" >&2
exit 1
