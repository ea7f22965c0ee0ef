#!/usr/bin/env bash
# Starts (or restarts) the MLflow tracking server on the Ray head; cluster/ray-cluster.yaml runs
# it from head_start_ray_commands. Writes MLFLOW_TRACKING_URI=http://<address>:<port> to
# $AVER_CLUSTER_ENV, which the head's Ray (and so every job driver) loads.
#
# It binds one private address only: the head's private IPv4 (EC2 instance metadata, else the
# first address `hostname -I` lists), or $AVER_MLFLOW_HOST. It refuses 0.0.0.0, :: and public
# addresses: cluster nodes reach the port through the cluster's security group, you reach it
# through an SSH tunnel (README, "On a cluster").
#
# Environment (all optional):
#   AVER_MLFLOW_HOST         address to bind (default: this machine's private IPv4)
#   AVER_MLFLOW_PORT         port (default 5000)
#   AVER_MLFLOW_DIR          pid file, log and the default store (default ~/aver-mlflow)
#   AVER_MLFLOW_BACKEND_URI  run/registry store (default sqlite:///$AVER_MLFLOW_DIR/mlflow.db,
#                            on the head's disk; a database URI keeps it beyond `ray down`)
#   AVER_MLFLOW_ARTIFACTS    artifact destination, proxied by the server so workers need no
#                            credentials: s3://bucket/prefix (checked before the start) or a
#                            directory (default $AVER_MLFLOW_DIR/artifacts)
#   AVER_MLFLOW_WORKERS      server worker processes (default 1: sqlite, few writers)
#   AVER_MLFLOW_WAIT_S       seconds to wait for /health (default 90)
#   AVER_CLUSTER_ENV         env file to write (default ~/aver-cluster.env)
#   AVER_PYTHON              Python with mlflow (default: the venv of this checkout)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${AVER_PYTHON:-$repo/.venv/bin/python}
port=${AVER_MLFLOW_PORT:-5000}
state=${AVER_MLFLOW_DIR:-$HOME/aver-mlflow}
backend=${AVER_MLFLOW_BACKEND_URI:-sqlite:///$state/mlflow.db}
artifacts=${AVER_MLFLOW_ARTIFACTS:-$state/artifacts}
workers=${AVER_MLFLOW_WORKERS:-1}
wait_s=${AVER_MLFLOW_WAIT_S:-90}
env_file=${AVER_CLUSTER_ENV:-$HOME/aver-cluster.env}
pidfile=$state/mlflow.pid
log=$state/mlflow.log

die() {
  echo "start_mlflow: $*" >&2
  exit 1
}

# The private IPv4 (IMDSv2 on EC2; elsewhere the first address of `hostname -I`).
private_ip() {
  "$py" - <<'EOF'
import subprocess
import urllib.request

ip = ""
try:
    base = "http://169.254.169.254/latest"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        f"{base}/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    token = opener.open(req, timeout=2).read().decode()
    req = urllib.request.Request(
        f"{base}/meta-data/local-ipv4", headers={"X-aws-ec2-metadata-token": token}
    )
    ip = opener.open(req, timeout=2).read().decode().strip()
except OSError:
    pass
if not ip:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    ip = out[0] if out else ""
print(ip)
EOF
}

[ -x "$py" ] || die "no Python at $py (run scripts/setup.sh first, or set AVER_PYTHON)"
host=${AVER_MLFLOW_HOST:-$(private_ip)}
# Only a literal private (RFC 1918) or loopback address: never all interfaces, never public.
"$py" - "$host" <<'EOF' || die "refusing to bind '$host': use the head's private address"
import ipaddress
import sys

try:
    ip = ipaddress.ip_address(sys.argv[1])
except ValueError:
    sys.exit(1)
private = ip.is_private and not (ip.is_unspecified or ip.is_link_local or ip.is_multicast)
sys.exit(0 if ip.is_loopback or private else 1)
EOF

mkdir -p "$state"
case "$artifacts" in
  s3://*)
    # Fail at `ray up` rather than at the end of a sweep, when the sweep's files are logged.
    "$py" - "$artifacts" <<'EOF' || die "cannot reach the artifact bucket of $artifacts"
import sys

import boto3

bucket = sys.argv[1][len("s3://"):].split("/", 1)[0]
boto3.client("s3").head_bucket(Bucket=bucket)
EOF
    ;;
  *://*) ;;
  *) mkdir -p "$artifacts" ;;
esac

# A server from an earlier `ray up` holds the port: stop it (its whole process group).
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if kill -0 "$old" 2>/dev/null; then
    echo "start_mlflow: stopping the previous server (pid $old)"
    kill -TERM -- "-$old" 2>/dev/null || kill -TERM "$old" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$old" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$old" 2>/dev/null || true
  fi
  rm -f "$pidfile"
fi

export MLFLOW_DISABLE_TELEMETRY=${MLFLOW_DISABLE_TELEMETRY:-true}
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
# Its own session (process group), detached from this shell: it outlives the ssh of `ray up`.
setsid "$py" -m mlflow server --host "$host" --port "$port" --workers "$workers" \
  --backend-store-uri "$backend" --artifacts-destination "$artifacts" \
  >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"

url="http://$host:$port"
"$py" - "$url/health" "$wait_s" "$pid" <<'EOF' || {
import os
import sys
import time
import urllib.request

url, wait_s, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + wait_s
while time.monotonic() < deadline:
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    time.sleep(0.5)
sys.exit(1)
EOF
  tail -n 30 "$log" >&2
  die "the server did not answer $url/health (log: $log)"
}

tmp=$(mktemp "$env_file.XXXXXX")
echo "MLFLOW_TRACKING_URI=$url" >"$tmp"
mv "$tmp" "$env_file"
echo "start_mlflow: MLflow at $url (pid $pid; store $backend; artifacts $artifacts)"
echo "start_mlflow: wrote MLFLOW_TRACKING_URI to $env_file"
