"""DVC stage `evaluate`: test-split metrics, confusion matrix, DVC metrics and plots.

Thin entry point; the logic lives in aver.evaluation.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.evaluation.pipeline import run
from aver.stage import main

if __name__ == "__main__":
    main("evaluate", run)
