#!/usr/bin/env bash
# Make this checkout runnable: a virtualenv in .venv with ctrader installed (editable) with
# everything the tests and tools need (the [dev] extra), at the versions pinned in
# requirements.lock, and its Cython extensions built. Idempotent and quick when nothing
# changed; sourced by tools/ctrader and tools/test so that each README command does all of its
# own set-up on a fresh machine. tools/lock refreshes the pins.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${CTRADER_PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "ctrader needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set CTRADER_PYTHON" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
# Reinstall only when the dependency declarations or the pins change.
stamp="$VENV/.ctrader-install-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing ctrader and its dependencies into $VENV (first run takes a minute or two)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install -q -c "$ROOT/requirements.lock" -e "$ROOT[dev]"
    echo "$want" > "$stamp"
fi
# Incremental: recompiles only extensions whose sources changed.
(cd "$ROOT" && "$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null)
