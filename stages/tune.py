"""DVC stage `tune`: Ray Tune search over the training function; writes best_params.yaml.

Thin entry point; the logic lives in aver.tuning.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.stage import main
from aver.tuning.pipeline import run

if __name__ == "__main__":
    main("tune", run)
