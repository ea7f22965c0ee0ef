"""DVC stage `align`: detect, track and align faces into shards.

Thin entry point; the logic lives in aver.faces.pipeline.
"""

from aver.stage import main
from aver.faces.pipeline import run

if __name__ == "__main__":
    main("align", run)
