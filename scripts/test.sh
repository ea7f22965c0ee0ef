#!/usr/bin/env bash
# The test command: set up the environment, lint + format check (ruff), type check (mypy on
# src/, configured in pyproject.toml), then pytest.
# Slow tests (minutes) are skipped unless AVER_SLOW=1. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
mypy
marker=(-m "not slow")
[ "${AVER_SLOW:-0}" = 1 ] && marker=()
python -m pytest "${marker[@]}" "$@"
