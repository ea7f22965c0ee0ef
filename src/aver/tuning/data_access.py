"""Make the feature cache visible to a trial on any node: a shared path, or `dvc pull`."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from aver.errors import DataError

MARKER = "meta.json"


def ensure_cache(cache: Path, access: str, repo_root: Path) -> Path:
    """Return `cache` once it is readable here; pull it with DVC first when configured.

    access: "shared" (the path is on storage every node mounts) or "dvc_pull" (run
    `dvc pull <cache>` in the repo checkout on this node, from the project's DVC remote).
    """
    if (cache / MARKER).exists():
        return cache
    host = socket.gethostname()
    if access == "dvc_pull":
        proc = subprocess.run(
            ["dvc", "pull", str(cache)], cwd=repo_root, capture_output=True, text=True
        )
        if proc.returncode == 0 and (cache / MARKER).exists():
            return cache
        raise DataError(
            f"node {host}: `dvc pull` could not fetch the feature cache "
            f"({proc.stderr.strip()[-300:]})",
            path=cache,
            fix="configure a DVC remote every node can reach (dvc remote add -d ...), "
            "`dvc push` the cache from the head, and keep the repo checked out at the same "
            "path on every node",
        )
    raise DataError(
        f"node {host} cannot see the feature cache",
        path=cache,
        fix="set tune.cache_path to a directory every node mounts (NFS, EFS, ...), or set "
        "tune.cache_access: dvc_pull so each node pulls it from the DVC remote",
    )
