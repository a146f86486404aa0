#!/usr/bin/env bash
# Install the dev dependencies into .venv (and Debian's Chromium for the browser tests),
# then lint, type-check and run every test.
# Tests start what they need themselves (Temporal dev server, embedded PostgreSQL,
# redis-server); PMP_TEST_DATABASE_URL / PMP_REDIS_URL point them at running ones.
source "$(dirname "$0")/_venv.sh" dev
# The browser tests drive Debian's Chromium (never a downloaded browser): install it once.
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y chromium || { $SUDO apt-get update && $SUDO apt-get install -y chromium; }
fi
cd "$ROOT"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" "$@"
