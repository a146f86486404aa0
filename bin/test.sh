#!/usr/bin/env bash
# Install the dev dependencies into .venv, then lint, type-check and run every test.
# Tests start what they need themselves (Temporal dev server, embedded PostgreSQL,
# redis-server); PMP_TEST_DATABASE_URL / PMP_REDIS_URL point them at running ones.
source "$(dirname "$0")/_venv.sh" dev
cd "$ROOT"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" "$@"
