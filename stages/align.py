"""DVC stage `align`: detect, track and align faces into shards.

Thin entry point; the logic lives in aver.faces.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.faces.pipeline import run
from aver.stage import main

if __name__ == "__main__":
    main("align", run)
