"""DVC stage `train`: train the configured model on the protocol's folds, tracked in MLflow.

Thin entry point; the logic lives in aver.training.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.stage import main
from aver.training.pipeline import run

if __name__ == "__main__":
    main("train", run)
