"""Video requests to the served model: a path on the server or the file's bytes as base64.

A request is one row with `video_path` (a file the server can read) or `video_b64` (the file's
bytes, base64; `filename` gives the suffix the temporary file gets, default .mp4). Decoded
uploads larger than the model's `max_video_mb` (its MLflow `model_config`) are refused before
decoding. Errors are DataError with what to change in the request.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aver.errors import DataError

PATH, B64, FILENAME = "video_path", "video_b64", "filename"
COLUMNS = (PATH, B64, FILENAME)
DEFAULT_MAX_VIDEO_MB = 100.0
DEFAULT_SUFFIX = ".mp4"
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_DATA_URL = re.compile(r"^data:[^,]*;base64,")
REQUEST_FIX = (
    'send {"dataframe_records": [{"video_path": "/path/on/server.mp4"}]} or '
    '{"dataframe_records": [{"video_b64": "<base64 of the file>", "filename": "clip.mp4"}]}'
)


@dataclass(frozen=True)
class VideoRequest:
    """One video to score: exactly one of `path` and `b64` is set."""

    path: str | None = None
    b64: str | None = None
    filename: str | None = None

    @property
    def name(self) -> str:
        """How the answer names the video: the path, else the filename, else "upload"."""
        return self.path or self.filename or "upload"


def is_video_request(columns: Any) -> bool:
    """True when the input names a video (a `video_path` or `video_b64` column/key)."""
    return PATH in columns or B64 in columns


def _text(value: Any) -> str | None:
    """A request field as a non-empty string, or None (missing, NaN, empty)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def parse_requests(rows: Sequence[Mapping[str, Any]]) -> list[VideoRequest]:
    """Video requests from records; DataError for a row with neither or both sources."""
    out = []
    for i, row in enumerate(rows):
        req = VideoRequest(_text(row.get(PATH)), _text(row.get(B64)), _text(row.get(FILENAME)))
        if (req.path is None) == (req.b64 is None):
            which = "both" if req.path else "neither"
            raise DataError(
                f"request row {i} has {which} of {PATH} and {B64} (exactly one is needed)",
                fix=REQUEST_FIX,
            )
        out.append(req)
    return out


def suffix(filename: str | None) -> str:
    """The temporary file's suffix: the filename's (letters and digits only), else .mp4."""
    ext = Path(filename).suffix if filename else ""
    return ext.lower() if _SUFFIX.match(ext) else DEFAULT_SUFFIX


def decode_b64(text: str, max_mb: float, name: str = "upload") -> bytes:
    """The bytes of base64 `text` (a data: URL prefix is allowed); DataError when it is not
    base64 or decodes to more than `max_mb` MiB."""
    text = _DATA_URL.sub("", text, count=1)
    size = len(text) * 3 // 4
    limit = int(max_mb * 2**20)
    if size > limit:
        raise DataError(
            f"{B64} of {name} is {size / 2**20:.1f} MiB, over the served model's limit of "
            f"{max_mb:g} MiB",
            fix=f"send a shorter clip, or a path on the server ({PATH}), or serve with "
            f"MLFLOW_PYFUNC_INFERENCE_CONFIG='{{\"max_video_mb\": {max(2 * max_mb, 1):g}}}'",
        )
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise DataError(
            f"{B64} of {name} is not valid base64 ({err})",
            fix="send the file's bytes base64-encoded (e.g. `base64 -w0 clip.mp4`)",
        ) from None


@contextmanager
def video_file(req: VideoRequest, max_mb: float = DEFAULT_MAX_VIDEO_MB) -> Iterator[Path]:
    """The request's video as a file: its path, or the decoded upload in a temporary
    directory removed afterwards."""
    if req.path is not None:
        path = Path(req.path)
        if not path.is_file():
            raise DataError(
                "file not found on the server",
                path=path,
                fix=f"pass a path the server can read, or send the bytes as {B64}",
            )
        yield path
        return
    assert req.b64 is not None
    data = decode_b64(req.b64, max_mb, req.name)
    if not data:
        raise DataError(f"{B64} of {req.name} is empty", fix=REQUEST_FIX)
    with tempfile.TemporaryDirectory(prefix="aver-serve-") as tmp:
        path = Path(tmp) / f"upload{suffix(req.filename)}"
        path.write_bytes(data)
        yield path
