#!/usr/bin/env bash
# GPU proof (issue 15.6): run once on a machine with a GPU; a few minutes (< 8), no network.
#   bash scripts/gpu_check.sh [--quick] [--only PART,...] [--keep]
# Measures the environment, training steps of the default model (fp32, AMP, torch.compile),
# a Ray Tune trial asking for a GPU, and MTCNN on CPU vs CUDA; prints a compact report and
# writes ${OUT:-.}/gpu_check.json. Without CUDA the CUDA parts are reported as skipped.
# Needs a Python with aver's dependencies (torch, ray[tune], facenet-pytorch, av, ...): $PYTHON,
# else this clone's .venv (bash scripts/setup.sh, which needs pip access), else python3.
# Exit status: 0 when no part failed or timed out, else 1 (the report is written either way).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out=${OUT:-.}
mkdir -p "$out"
exec "$py" bench/gpu_check.py --json "$out/gpu_check.json" "$@"
