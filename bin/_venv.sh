# Sourced by the bin/ scripts: make .venv (Python >= 3.11) with the project installed.
# $1 is "runtime" or "dev" (adds test and lint tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PMP_VENV:-$ROOT/.venv}"

_python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

if [ -x "$VENV/bin/python" ] && ! _python_ok "$VENV/bin/python"; then
  echo "$VENV has a Python older than 3.11; recreating it" >&2
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  PYTHON="${PYTHON:-}"
  if [ -z "$PYTHON" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
      if command -v "$candidate" >/dev/null && _python_ok "$candidate"; then
        PYTHON="$candidate"
        break
      fi
    done
  fi
  if [ -z "$PYTHON" ]; then
    echo "PMP LLM Gateway needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  "$PYTHON" -m venv "$VENV" || {
    echo "could not create a virtualenv; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  }
fi
STAMP="$VENV/.pmp-installed-$1"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ "$1" = "dev" ]; then
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
  else
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT"
  fi
  touch "$STAMP"
fi
