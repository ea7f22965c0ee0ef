"""DVC stage `evaluate`: test-split metrics, confusion matrix, DVC metrics and plots.

Thin entry point; the logic lives in aver.evaluation.pipeline.
"""

from aver.stage import main
from aver.evaluation.pipeline import run

if __name__ == "__main__":
    main("evaluate", run)
