#!/usr/bin/env bash
# Sets up this clone's .venv: a small virtualenv of its own (this clone's aver, editable) on top
# of a shared one holding the heavy dependencies. The shared venv lives outside the clone, under
# $AVER_VENV_CACHE (default ~/.cache/aver/venvs), keyed by the hash of the requirements files and
# the Python version, so reruns and fresh clones on the same machine take seconds. Nothing of a
# clone is installed in the shared venv: each clone's tools (aver, dvc, pytest, ...) run that
# clone's code. Needs Python 3.11+ and no root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "aver needs Python >= 3.11"'
key=$( (cat requirements.txt requirements-nodeps.txt; "$PY" -c 'import sys; print(sys.version)') \
  | sha256sum | cut -c1-16)
cache=${AVER_VENV_CACHE:-$HOME/.cache/aver/venvs}
shared="$cache/$key"
if [ ! -f "$shared/.complete" ]; then
  echo "setup: building virtualenv $shared (first run on this machine; a few minutes)"
  rm -rf "$shared"
  mkdir -p "$cache"
  # Debian's python3 may lack ensurepip (python3-venv); fall back to virtualenv from PyPI.
  "$PY" -m venv "$shared" 2>/dev/null || {
    rm -rf "$shared"
    "$PY" -m pip install -q --user virtualenv && "$PY" -m virtualenv -q "$shared"
  }
  "$shared/bin/python" -m pip install -q --upgrade pip
  # pip's notices about local index mirrors are noise; real errors still fail the script.
  "$shared/bin/python" -m pip install -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
  "$shared/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
  touch "$shared/.complete"
fi
# Earlier versions installed a clone's aver into the shared venv: remove it, so that no clone
# can import another clone's code through it.
if "$shared/bin/python" -m pip show -q aver >/dev/null 2>&1; then
  "$shared/bin/python" -m pip uninstall -q -y aver >/dev/null
fi
[ -L .venv ] && rm .venv # the link earlier versions made to the shared venv
if [ -e .venv ] && [ ! -f .venv/aver-shared-venv ]; then
  echo "setup: .venv exists and was not made by this script; move it away and rerun" >&2
  exit 1
fi
if [ "$(cat .venv/aver-shared-venv 2>/dev/null)" != "$shared" ]; then
  rm -rf .venv
  "$shared/bin/python" -m venv --without-pip .venv
  "$shared/bin/python" scripts/link_venv.py "$shared" .venv
  echo "$shared" >.venv/aver-shared-venv
fi
# This clone's aver, editable, in its own .venv (no deps: seconds).
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
echo "setup: .venv (this clone's code) on top of $shared"
