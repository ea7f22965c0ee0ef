#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv and links it as .venv at the repo root.
# The venv lives outside the clone, under $AVER_VENV_CACHE (default ~/.cache/aver/venvs), keyed
# by the hash of the requirements files and the Python version, so reruns and fresh clones on
# the same machine take seconds. Needs Python 3.11+ and no root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "aver needs Python >= 3.11"'
key=$( (cat requirements.txt requirements-nodeps.txt; "$PY" -c 'import sys; print(sys.version)') \
  | sha256sum | cut -c1-16)
cache=${AVER_VENV_CACHE:-$HOME/.cache/aver/venvs}
venv="$cache/$key"
if [ ! -f "$venv/.complete" ]; then
  echo "setup: building virtualenv $venv (first run on this machine; a few minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  # Debian's python3 may lack ensurepip (python3-venv); fall back to virtualenv from PyPI.
  "$PY" -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"
    "$PY" -m pip install -q --user virtualenv && "$PY" -m virtualenv -q "$venv"
  }
  "$venv/bin/python" -m pip install -q --upgrade pip
  # pip's notices about local index mirrors are noise; real errors still fail the script.
  "$venv/bin/python" -m pip install -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
  "$venv/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
  touch "$venv/.complete"
fi
if [ -e .venv ] && [ ! -L .venv ]; then
  echo "setup: .venv exists and is not a link; move it away and rerun" >&2
  exit 1
fi
ln -sfn "$venv" .venv
# The package itself is installed from this clone (editable, no deps: seconds).
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
echo "setup: .venv -> $venv"
