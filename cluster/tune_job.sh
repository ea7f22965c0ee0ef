#!/usr/bin/env bash
# The `ray job submit` entrypoint of a sweep on the cluster of cluster/ray-cluster.yaml (README,
# "On a cluster"). Runs on the head, in the job's copy of the repository (--working-dir .):
#   1. the project venv: scripts/setup.sh with the cluster's Python (python3.11, as on every
#      node), plus requirements-cluster.txt (DVC's S3 plugin, boto3);
#   2. MLFLOW_TRACKING_URI of the head's tracking server (written by cluster/start_mlflow.sh);
#   3. the feature cache from the default DVC remote, which must be S3 (`dvc pull cache`);
#   4. `dvc repro --single-item tune`, then `dvc push tune`, and dvc.lock plus a copy of
#      reports/tune (as tune/) in ~/aver-results/<UTC time>/, linked as ~/aver-results/latest,
#      for `ray rsync-down` (not under reports/: the config's rsync_exclude skips that name).
# Extra arguments go to `dvc repro` (e.g. --force).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python3.11}
bash scripts/setup.sh
.venv/bin/python -m pip install -q -r requirements-cluster.txt
export PATH="$PWD/.venv/bin:$PATH"

env_file=${AVER_CLUSTER_ENV:-$HOME/aver-cluster.env}
[ -f "$env_file" ] || {
  echo "tune_job: $env_file is missing: the head's MLflow server did not start (ray up)" >&2
  exit 1
}
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
echo "tune_job: MLflow tracking at $MLFLOW_TRACKING_URI"

remote=$(dvc remote default 2>/dev/null || true)
url=$([ -n "$remote" ] && dvc config "remote.$remote.url" 2>/dev/null || true)
case "$url" in
  s3://*) echo "tune_job: DVC remote $remote ($url)" ;;
  *)
    echo "tune_job: the default DVC remote is '${remote:-none}' (${url:-no url}); nodes can" \
      "only reach an S3 one: dvc remote add -d s3 s3://<bucket>/aver/dvc, then dvc push" >&2
    exit 1
    ;;
esac
# tune starts no sweep unless train reads its result (train.use_tuned: true).
if [ "$(.venv/bin/python -c 'from aver.config import load_params; print(load_params().train.use_tuned)')" != True ]; then
  echo "tune_job: train.use_tuned is false in params.yaml, so tune would start no sweep;" \
    "set train.use_tuned: true (and commit it) before submitting" >&2
  exit 1
fi
dvc pull cache

# Trials ask for tune.gpus_per_trial whenever a node type of this cluster has a GPU, so the
# autoscaler starts GPU workers for them (aver.tuning.resources); none are requested here.
dvc repro --single-item tune "$@"
dvc push tune

out="$HOME/aver-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
cp dvc.lock "$out/"
cp -r reports/tune "$out/tune"
ln -sfn "$out" "$HOME/aver-results/latest"
echo "tune_job: results in $out (also ~/aver-results/latest on the head)"
