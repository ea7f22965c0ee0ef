"""DVC stage `extract`: audio to 16 kHz WAV and video to constant-fps MP4 with ffmpeg.

Thin entry point; the logic lives in aver.media.pipeline.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.media.pipeline import run
from aver.stage import main

if __name__ == "__main__":
    main("extract", run)
