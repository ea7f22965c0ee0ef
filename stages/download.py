"""DVC stage `download`: fetch or generate the dataset's media and write data/raw/index.csv.

Thin entry point; the logic lives in aver.datasets.download.
"""

import workspace_src  # noqa: F401  (this workspace's src/ first)

from aver.datasets.download import run
from aver.stage import main

if __name__ == "__main__":
    main("download", run)
