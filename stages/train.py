"""DVC stage `train`: train the configured model on the protocol's folds, tracked in MLflow.

Thin entry point; the logic lives in aver.training.pipeline.
"""

from aver.training.pipeline import run

from aver.stage import main

if __name__ == "__main__":
    main("train", run)
