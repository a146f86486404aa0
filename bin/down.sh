#!/usr/bin/env bash
# Stop a gateway started with bin/up.sh (it stops its own Temporal and PostgreSQL).
set -euo pipefail
pids="$(pgrep -f 'pmp-gateway (serve|api|worker)' || true)"
if [ -z "$pids" ]; then
  echo "no pmp-gateway process is running"
  exit 0
fi
kill -TERM $pids
for _ in $(seq 1 60); do
  pgrep -f 'pmp-gateway (serve|api|worker)' >/dev/null || { echo "stopped"; exit 0; }
  sleep 0.5
done
echo "pmp-gateway did not stop within 30 s" >&2
exit 1
