#!/usr/bin/env bash
# Install into .venv (first run only) and start the gateway on its embedded default:
# Temporal dev server + PostgreSQL with pgvector in $PMP_DATA_DIR, worker in-process.
source "$(dirname "$0")/_venv.sh" runtime
exec "$VENV/bin/pmp-gateway" serve "$@"
