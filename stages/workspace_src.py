"""Makes a stage run the code of the workspace it is in.

Imported first by every stage script. The shared virtualenv can point at another clone's
`src`, and a `dvc exp run --temp` / queued experiment runs in a copy under `.dvc/tmp/exps/`:
either way the code that runs must be this workspace's, as dvc.lock records. Subprocesses (Ray
workers, multiprocessing) inherit it through PYTHONPATH.
"""

import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
if "aver" in sys.modules:  # pragma: no cover - only if something imported aver before us
    raise RuntimeError(f"aver was imported before {__file__}; import workspace_src first")
