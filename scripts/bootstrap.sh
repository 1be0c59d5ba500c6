# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: a project venv with the given extras installed.
# Usage: . scripts/bootstrap.sh EXTRAS   (e.g. "fastcalogan" or "test,fastcalogan,lamarr")
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FCGTAINER_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
    echo "fcgtainer needs Python >= 3.10 (found: $("$PY" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || {
        echo "python3 -m venv failed: install your distribution's python3-venv package" >&2
        exit 1
    }
fi
stamp="$VENV/.fcgtainer-installed-$1"
# reinstall only when the dependency list changed
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing fcgtainer[$1] into $VENV (log: $VENV/pip.log) ..."
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e "${ROOT}[$1]"; } > "$VENV/pip.log" 2>&1; then
        tail -20 "$VENV/pip.log" >&2
        echo "pip install failed: see $VENV/pip.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
