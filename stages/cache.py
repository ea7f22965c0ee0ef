"""DVC stage `cache`: log-mel/MFCC and face clips into a memory-mappable feature cache.

Thin entry point; the logic lives in aver.features.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.features.pipeline import run
from aver.stage import main

if __name__ == "__main__":
    main("cache", run)
