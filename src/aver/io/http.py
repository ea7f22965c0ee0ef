"""HTTP downloads that resume, retry with backoff, verify size and checksums, rename at the end.

`download(url, dest)` streams into `<dest>.part`; after a cut it asks for the rest with
`Range: bytes=N-`. The file gets its final name only once it has the expected size and checksums,
and a small sidecar stamp (`.<name>.verified`) lets later runs skip it without rehashing.
`fetch_bytes` / `fetch_json` fetch small metadata (e.g. a Zenodo record) with the same retries.

A file without a known checksum is pinned on first use when a `DownloadLock` is given (see
`aver.io.lockfile`) and verified against its pin afterwards. Redirects from https to http and
TLS failures are refused at once (no retry); a transfer slower than `min_rate_bytes_s` over
`rate_window_s`, or running past `deadline_s`, is ended. URLs in messages have credentials
redacted.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from aver.errors import DownloadError
from aver.io.atomic import promote_file, write_json
from aver.io.checksums import new_hashers, update_from_file
from aver.io.lockfile import DownloadLock, Pin
from aver.progress import bar as progress_bar
from aver.redact import redact_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = "aver-downloader/0.1 (python-requests)"
MAX_BACKOFF_S = 60.0
RETRY_STATUS = frozenset({408, 425, 429})
# Errors that no retry can fix: a malformed URL, an unsupported scheme, a redirect loop.
FATAL_REQUEST_ERRORS = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.TooManyRedirects,
)
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
REMOTE_CHANGED_FIX = (
    "rerun to retry; if it fails again the remote file changed: check the URL "
    "and update the expected size/checksum in the dataset record or params.yaml"
)
TLS_FIX = "check the system clock, proxy or CA bundle (REQUESTS_CA_BUNDLE)"
HTML_SUFFIXES = (".html", ".htm")
_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\"]*")


class _Retryable(Exception):
    """A transient failure (connection, timeout, truncated body, 5xx): retry after a backoff."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must match (None = not checked), where that comes from, and what
    to do when a fresh download does not match."""

    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    source: str = "the expected size/checksum"
    fix: str = REMOTE_CHANGED_FIX

    @property
    def checksums(self) -> dict[str, str]:
        return {k: v.lower() for k, v in (("md5", self.md5), ("sha256", self.sha256)) if v}

    def mismatches(self, size: int, digests: dict[str, str]) -> list[str]:
        """Human-readable differences between this expectation and a file's size/digests."""
        out = []
        if self.size is not None and size != self.size:
            out.append(f"size: expected {self.size} bytes, got {size}")
        for algo, want in self.checksums.items():
            got = digests.get(algo)
            if got is not None and got != want:
                out.append(f"{algo}: expected {want}, got {got}")
        return out

    def describe(self) -> str:
        parts = [f"size={self.size}"] if self.size is not None else []
        parts += [f"{k}={v}" for k, v in self.checksums.items()]
        return ", ".join(parts) or "nothing to check"


def part_path(dest: str | Path) -> Path:
    """Where an unfinished download of `dest` lives."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def stamp_path(dest: str | Path) -> Path:
    """The sidecar recording that `dest` was verified (size, mtime_ns, checksums)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.verified")


def download(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    chunk_bytes: int = 1 << 20,
    min_rate_bytes_s: float = 0.0,
    rate_window_s: float = 30.0,
    deadline_s: float | None = None,
    lock: DownloadLock | None = None,
    progress: bool = True,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> Path:
    """Download `url` to `dest`, resuming and retrying; return `dest` once it verifies.

    Makes no request when `dest` already exists and matches `size`/`md5`/`sha256`. On a size or
    checksum mismatch the partial file is deleted and DownloadError is raised. Without md5/sha256
    and with `lock`, the first download is pinned in the lock file and later runs must match it
    (a mismatching `dest` is refused, not replaced). `timeout_s` bounds connecting and each read;
    `min_rate_bytes_s` (0 = off) over `rate_window_s` and `deadline_s` (None = none) end a
    trickling transfer with a DownloadError, keeping the partial file for a rerun.

    Long: verify-or-replace, transfer, pin and promote share the expectation and the pin; the
    transfer itself lives in _Transfer.
    """
    dest = Path(dest)
    shown = redact_uri(url)
    expected = Expected(size, md5, sha256)
    pins = lock if not expected.checksums else None  # trust on first use applies
    pin = pins.get(url) if pins is not None else None
    if pins is not None and pin is not None:
        expected = _pinned_expectation(pin, size, shown, pins)
    if dest.exists():
        problems = verify_existing(dest, expected)
        if not problems:
            if pins is not None and pin is None:  # there before pinning existed: pin as is
                pins.pin(url, dest, sha256=stamped_sha256(dest), size=dest.stat().st_size)
            log.debug("%s: present and verified, skipped", dest)
            return dest
        if pins is not None and pin is not None:
            raise _changed_on_disk(dest, shown, problems, pins)
        log.warning("%s exists but does not verify (%s); downloading it again", dest, problems)
        dest.unlink()
        stamp_path(dest).unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sess = session or new_session(headers)
    transfer = _Transfer(
        sess,
        url,
        dest,
        expected,
        timeout_s=timeout_s,
        chunk_bytes=chunk_bytes,
        min_rate_bytes_s=min_rate_bytes_s,
        rate_window_s=rate_window_s,
        deadline_s=deadline_s,
        extra_headers=headers if session is not None else None,
    )
    try:
        with progress_bar(
            total=expected.size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
            leave=False,
        ) as bar:
            transfer.bar = bar
            digests = transfer.run(retries=retries, backoff_s=backoff_s)
    finally:
        if session is None:
            sess.close()
    if pins is not None and pin is None:
        _refuse_html(transfer)
        pins.pin(
            url,
            dest,
            sha256=digests["sha256"],
            size=transfer.part.stat().st_size,
            etag=transfer.etag,
            last_modified=transfer.last_modified,
        )
    promote_file(transfer.part, dest)
    _write_stamp(dest, digests, shown)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _pinned_expectation(pin: Pin, size: int | None, shown: str, lock: DownloadLock) -> Expected:
    """What a file pinned in `lock` must match, and the fix when the server's copy changed."""
    return Expected(
        size=size if size is not None else pin.size,
        sha256=pin.sha256,
        source=f"its pin in {lock.path} (pinned {pin.pinned_at or 'earlier'}, "
        f"ETag {pin.etag or 'none'})",
        fix=f"rerun to retry; if it fails again the file on the server changed since it was "
        f"pinned. If that change is intended, delete the entry {shown!r} from {lock.path} and "
        "rerun (the new file is pinned); otherwise find out why the server's file changed",
    )


def _changed_on_disk(dest: Path, shown: str, problems: str, lock: DownloadLock) -> DownloadError:
    return DownloadError(
        f"changed on disk since it was downloaded from {shown} and pinned in {lock.path}: "
        f"{problems}; it was not used or replaced",
        path=dest,
        fix=f"if the change is intended, delete the entry {shown!r} from {lock.path} and rerun "
        f"(the file is pinned as it is now); otherwise delete {dest} and rerun to fetch the "
        "pinned version again",
    )


def _refuse_html(transfer: _Transfer) -> None:
    """Refuse an HTML page served for a file that is not HTML (login or captive portal)."""
    ctype = (transfer.content_type or "").split(";")[0].strip().lower()
    if ctype != "text/html" or transfer.dest.suffix.lower() in HTML_SUFFIXES:
        return
    transfer.part.unlink(missing_ok=True)
    raise DownloadError(
        f"{transfer.shown} answered an HTML page (Content-Type: text/html) instead of the file; "
        "it was not kept",
        path=transfer.dest,
        fix="open the URL in a browser: a login, error or captive-portal (Wi-Fi sign-in) page "
        "means the network or the URL in params.yaml needs fixing; then rerun",
    )


def stamped_sha256(dest: str | Path) -> str:
    """sha256 of `dest`, from a fresh stamp when there is one (else hashed, and stamped when
    its folder is writable), so a large file is not rehashed on every run."""
    dest = Path(dest)
    st = dest.stat()
    stamp = _read_stamp(dest)
    fresh = (stamp.get("size"), stamp.get("mtime_ns")) == (st.st_size, st.st_mtime_ns)
    if fresh and isinstance(stamp.get("sha256"), str):
        return str(stamp["sha256"])
    hashers = new_hashers(["sha256"])
    update_from_file(hashers, dest)
    digest: str = hashers["sha256"].hexdigest()
    try:
        _write_stamp(dest, {"sha256": digest}, stamp.get("url"))
    except OSError as err:  # a read-only folder: hash again next time
        log.debug("cannot stamp %s: %s", dest, err)
    return digest


def verify_existing(dest: str | Path, expected: Expected) -> str:
    """Check a file already at its final name; return "" if it verifies, else why not.

    A fresh stamp (same size and mtime_ns, recording the expected checksums) avoids rehashing.
    """
    dest = Path(dest)
    st = dest.stat()
    if expected.size is not None and st.st_size != expected.size:
        return f"size: expected {expected.size} bytes, got {st.st_size}"
    stamp = _read_stamp(dest)
    fresh = stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns
    if fresh and all(algo in stamp for algo in expected.checksums):
        problems = expected.mismatches(st.st_size, {a: stamp[a] for a in expected.checksums})
        return "; ".join(problems)
    algos = sorted(set(expected.checksums) | {"sha256"})
    hashers = new_hashers(algos)
    update_from_file(hashers, dest)
    digests = {a: h.hexdigest() for a, h in hashers.items()}
    problems = expected.mismatches(st.st_size, digests)
    if not problems:
        _write_stamp(dest, digests, stamp.get("url"))
    return "; ".join(problems)


def fetch_bytes(
    url: str,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """GET a small resource into memory, retrying connection errors, timeouts, cuts and 5xx."""
    sess = session or new_session()
    shown = redact_uri(url)

    def attempt() -> bytes:
        try:
            with sess.get(
                url, timeout=(timeout_s, timeout_s), headers=headers, hooks=REDIRECT_HOOKS
            ) as resp:
                _check_status(resp, shown, None)
                return resp.content
        except FATAL_REQUEST_ERRORS as err:
            raise DownloadError(f"cannot fetch {shown}: {err}", fix="check the URL") from None
        except requests.exceptions.SSLError as err:
            raise tls_error(url, err, None) from None
        except requests.RequestException as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from err

    try:
        return _retry_loop(attempt, url=shown, what=None, retries=retries, backoff_s=backoff_s)
    finally:
        if session is None:
            sess.close()


def fetch_json(
    url: str,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """GET and parse a JSON document (same retry policy as `fetch_bytes`)."""
    hdrs = {"Accept": "application/json", **(headers or {})}
    data = fetch_bytes(
        url,
        retries=retries,
        backoff_s=backoff_s,
        timeout_s=timeout_s,
        session=session,
        headers=hdrs,
    )
    try:
        return json.loads(data)
    except ValueError as err:
        raise DownloadError(
            f"{redact_uri(url)} did not return JSON ({err}); it starts with {data[:120]!r}",
            fix="check the URL points at the JSON API (e.g. .../api/records/<id>)",
        ) from None


def new_session(headers: dict[str, str] | None = None) -> requests.Session:
    """A requests session with aver's User-Agent (plus `headers`)."""
    sess = requests.Session()
    sess.headers["User-Agent"] = USER_AGENT
    sess.headers.update(headers or {})
    return sess


def refuse_https_downgrade(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: raise DownloadError when an https URL redirects to a plain http one."""
    location = resp.headers.get("Location") if resp.is_redirect else None
    if not location:
        return
    target = urljoin(resp.url, location)
    if urlsplit(resp.url).scheme.lower() == "https" and urlsplit(target).scheme.lower() == "http":
        resp.close()
        raise DownloadError(
            f"{redact_uri(resp.url)} redirects to {redact_uri(target)}: refusing to leave HTTPS "
            "for plain HTTP (the file could be altered on the way)",
            fix="ask the server's owner to fix the redirect, or, if an unencrypted link is "
            "acceptable, put the http URL in params.yaml / the dataset record yourself",
        )


# Passed with every request, so sessions given by callers are covered too (requests applies
# request hooks to each redirect response as well).
REDIRECT_HOOKS = {"response": [refuse_https_downgrade]}


def tls_error(url: str, err: Exception, dest: Path | None) -> DownloadError:
    """The DownloadError for a TLS failure (not retried: waiting does not fix a certificate)."""
    request = getattr(err, "request", None)
    failing = getattr(request, "url", None) or url
    host = urlsplit(failing).hostname or redact_uri(failing)
    found = _SSL_REASON.search(str(err))
    reason = found.group(0).strip() if found else f"{type(err).__name__}: {err}"
    return DownloadError(
        f"TLS/certificate problem talking to {host}: {reason} (fetching {redact_uri(url)}; "
        "not retried)",
        path=dest,
        fix=TLS_FIX,
    )


@dataclass
class _Transfer:
    """One file's transfer into its .part file, with the running checksums of what is on disk."""

    session: requests.Session
    url: str
    dest: Path
    expected: Expected
    timeout_s: float
    chunk_bytes: int
    min_rate_bytes_s: float = 0.0
    rate_window_s: float = 30.0
    deadline_s: float | None = None
    extra_headers: dict[str, str] | None = None
    bar: Any = None
    hashers: dict[str, Any] = field(default_factory=dict)
    hashed: int = 0  # bytes of the part file the hashers have seen
    resumed: bool = False  # bytes left by an earlier run were kept
    started: float = field(default_factory=time.monotonic)
    etag: str | None = None  # validators and type of the last file response
    last_modified: str | None = None
    content_type: str | None = None

    @property
    def part(self) -> Path:
        return part_path(self.dest)

    @property
    def shown(self) -> str:
        return redact_uri(self.url)

    @property
    def algos(self) -> list[str]:
        return sorted(set(self.expected.checksums) | {"sha256"})

    def run(self, *, retries: int, backoff_s: float) -> dict[str, str]:
        """Fetch until the part is complete and verified; return its digests."""
        self._sync(self._part_size())
        restarted = False
        while True:
            self._retry(retries, backoff_s)
            size = self._part_size()
            digests = {a: h.hexdigest() for a, h in self.hashers.items()}
            problems = self.expected.mismatches(size, digests)
            if not problems:
                return digests
            self.part.unlink(missing_ok=True)
            self._sync(0)
            if self.resumed and not restarted:
                # The kept bytes may come from an older version of the remote file.
                log.warning("%s: resumed file does not verify; restarting from 0", self.dest)
                restarted, self.resumed = True, False
                continue
            raise DownloadError(
                f"download of {self.shown} does not verify against {self.expected.source}: "
                f"{'; '.join(problems)} (the partial file was deleted; nothing was written to "
                f"{self.dest.name})",
                path=self.dest,
                fix=self.expected.fix,
            )

    def _retry(self, retries: int, backoff_s: float) -> None:
        try:
            _retry_loop(
                self._attempt,
                url=self.shown,
                what=str(self.dest),
                retries=retries,
                backoff_s=backoff_s,
                position=self._part_size,
                kept=self.part,
                until=self._deadline(),
            )
        except OSError as err:
            raise DownloadError(
                f"cannot write {self.part}: {err}",
                path=self.dest,
                fix="free disk space or fix permissions, then rerun (the download resumes)",
            ) from None

    def _part_size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _sync(self, offset: int) -> None:
        """Make the hashers cover exactly the first `offset` bytes of the part file."""
        if offset == self.hashed and self.hashers:
            return
        self.hashers = new_hashers(self.algos)
        self.hashed = 0
        if offset:
            self.hashed = update_from_file(self.hashers, self.part, limit=offset)
            self.resumed = True

    def _restart(self, reason: str) -> _Retryable:
        self.part.unlink(missing_ok=True)
        self._sync(0)
        return _Retryable(f"{reason}; restarting from byte 0", retry_after=0)

    def _attempt(self) -> None:
        """One request: append the rest of the body to the part file, or raise _Retryable."""
        size = self.expected.size
        offset = self._part_size()
        if size is not None and offset > size:
            self.part.unlink()
            offset = 0
        self._sync(offset)
        if size is not None and offset == size and offset > 0:
            return  # complete from an earlier run: verify without a request
        headers = {"Accept-Encoding": "identity", **(self.extra_headers or {})}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        timeout = self._timeout(offset)
        try:
            resp = self.session.get(
                self.url,
                headers=headers,
                stream=True,
                timeout=(timeout, timeout),
                hooks=REDIRECT_HOOKS,
            )
        except FATAL_REQUEST_ERRORS as err:
            raise DownloadError(
                f"cannot fetch {self.shown}: {err}", path=self.dest, fix="check the URL"
            ) from None
        except requests.exceptions.SSLError as err:
            raise tls_error(self.url, err, self.dest) from None
        except requests.RequestException as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from err
        with resp:
            self._receive(resp, offset)

    def _receive(self, resp: requests.Response, offset: int) -> None:
        if resp.status_code == 416 and offset:
            total = _content_range(resp.headers.get("Content-Range"))[2]
            if total == offset or (total is None and self.expected.checksums):
                return  # the part already holds the whole file: verify it
            raise self._restart(f"server rejected the resume range (416, total {total})")
        _check_status(resp, self.shown, self.dest)
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        plain = encoding in ("", "identity")
        if resp.status_code == 206:
            start, _, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset or not plain:
                raise self._restart(f"server answered a range from byte {start}, asked {offset}")
            mode = "ab"
        elif resp.status_code == 200:
            if offset:
                log.info("%s: server ignored the Range request; restarting from 0", self.shown)
            offset = 0
            self._sync(0)
            self.resumed = False
            length = resp.headers.get("Content-Length")
            total = int(length) if plain and length and length.isdigit() else None
            mode = "wb"
        else:
            raise DownloadError(
                f"unexpected HTTP {resp.status_code} {resp.reason} from {self.shown}",
                path=self.dest,
                fix="check the URL; it should answer 200 with the file",
            )
        if self.expected.size is not None and total is not None and total != self.expected.size:
            self.part.unlink(missing_ok=True)
            self._sync(0)
            raise DownloadError(
                f"{self.shown} has {total} bytes, expected {self.expected.size} "
                f"({self.expected.source}); nothing was written to {self.dest.name}",
                path=self.dest,
                fix=self.expected.fix,
            )
        self.etag = resp.headers.get("ETag")
        self.last_modified = resp.headers.get("Last-Modified")
        self.content_type = resp.headers.get("Content-Type")
        if self.bar is not None:
            self.bar.total = total if total is not None else self.expected.size
            self.bar.n = offset
            self.bar.refresh()
        self._write_body(resp, mode, offset, total, plain)

    def _write_body(
        self, resp: requests.Response, mode: str, offset: int, total: int | None, plain: bool
    ) -> None:
        got = offset
        chunks = _raw_chunks(resp, self.chunk_bytes) if plain else None
        rate = _RateWindow(self.rate_window_s) if self.min_rate_bytes_s > 0 else None
        with open(self.part, mode) as fh:
            try:
                for block in chunks or resp.iter_content(self.chunk_bytes):
                    fh.write(block)
                    for h in self.hashers.values():
                        h.update(block)
                    self.hashed += len(block)
                    got += len(block)
                    if self.bar is not None:
                        self.bar.update(len(block))
                    seen = rate.add(len(block)) if rate is not None else None
                    if seen is not None and seen < self.min_rate_bytes_s:
                        raise self._too_slow(seen, got)
                    self._check_deadline(got)
            except READ_ERRORS as err:
                if isinstance(err, OSError) and not _is_network_error(err):
                    raise
                if not plain:  # decoded bytes cannot be resumed by byte offset
                    fh.close()
                    raise self._restart(f"transfer interrupted: {err}") from err
                raise _Retryable(f"transfer interrupted after {got} bytes: {err}") from err
        if total is not None and got < total:
            raise _Retryable(f"body truncated at {got} of {total} bytes")

    def _deadline(self) -> float | None:
        return None if self.deadline_s is None else self.started + self.deadline_s

    def _timeout(self, offset: int) -> float:
        """Connect/read timeout: timeout_s, or less when the deadline is nearer."""
        self._check_deadline(offset)
        deadline = self._deadline()
        if deadline is None:
            return self.timeout_s
        return max(min(self.timeout_s, deadline - time.monotonic()), 0.01)

    def _check_deadline(self, got: int) -> None:
        deadline = self._deadline()
        if deadline is None or time.monotonic() < deadline:
            return
        raise DownloadError(
            f"{self.shown} did not finish within download.deadline_s = {self.deadline_s:g} s "
            f"({got} bytes so far, kept in {self.part.name} for a rerun to resume)",
            path=self.dest,
            fix="raise download.deadline_s in params.yaml (null = no deadline), or check the "
            "network and rerun",
        )

    def _too_slow(self, rate: float, got: int) -> DownloadError:
        return DownloadError(
            f"{self.shown} is too slow: {rate:.0f} bytes/s on average over the last "
            f"{self.rate_window_s:g} s, under download.min_rate_bytes_s = "
            f"{self.min_rate_bytes_s:g}; the transfer was ended ({got} bytes kept in "
            f"{self.part.name} for a rerun to resume)",
            path=self.dest,
            fix="check the network or proxy, or retry later; for a slow link lower "
            "download.min_rate_bytes_s (0 turns the check off) or raise download.rate_window_s "
            "in params.yaml",
        )


class _RateWindow:
    """The average transfer rate over the last `window_s` seconds of one response body."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self.total = 0
        self.samples: deque[tuple[float, int]] = deque([(clock(), 0)])  # (time, total bytes)

    def add(self, nbytes: int) -> float | None:
        """Count `nbytes` more; return the rate (bytes/s) once a full window has passed."""
        now = self.clock()
        self.total += nbytes
        if now - self.samples[-1][0] >= self.window_s / 64 or len(self.samples) == 1:
            self.samples.append((now, self.total))
        else:  # many small blocks: keep at most ~64 samples per window
            self.samples[-1] = (self.samples[-1][0], self.total)
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
        start, base = self.samples[0]
        if now - start < self.window_s:
            return None
        return (self.total - base) / (now - start)


def _raw_chunks(resp: requests.Response, chunk_bytes: int) -> Iterator[bytes]:
    """Undecoded body blocks as they arrive; a cut or timeout yields every byte that arrived
    first, then raises (read1 returns what is there instead of waiting for a full block)."""
    read = getattr(resp.raw, "read1", None) or resp.raw.read  # read1: urllib3 >= 2.3
    while True:
        block = read(chunk_bytes, decode_content=False)
        if not block:
            return
        yield block


def _is_network_error(err: OSError) -> bool:
    return isinstance(err, ConnectionError | TimeoutError) or type(err).__module__.startswith(
        ("urllib3", "requests", "socket", "ssl")
    )


def _check_status(resp: requests.Response, url: str, dest: Path | None) -> None:
    status = resp.status_code
    if status >= 500 or status in RETRY_STATUS:
        raise _Retryable(f"HTTP {status} {resp.reason}", retry_after=_retry_after(resp))
    if status >= 400:
        hint = {
            401: "the server wants credentials",
            403: "access is forbidden (the record may be restricted)",
            404: "the file is not there (moved or renamed)",
        }.get(status, "the server refused the request")
        raise DownloadError(
            f"HTTP {status} {resp.reason} for {url}: {hint}",
            path=dest,
            fix="check the URL in params.yaml / the dataset record",
        )


def _retry_loop(
    attempt: Callable[[], T],
    *,
    url: str,
    what: str | None,
    retries: int,
    backoff_s: float,
    position: Callable[[], int] | None = None,
    kept: Path | None = None,
    until: float | None = None,
) -> T:
    """Call `attempt` until it returns; back off exponentially after each _Retryable.

    With `position` (bytes on disk), an attempt that got further than ever before does not use
    up a retry, so a long file over a flaky link still finishes. No backoff sleeps past `until`
    (a time.monotonic deadline that the attempt itself enforces).
    """
    failures = 0
    best = position() if position else 0
    while True:
        try:
            return attempt()
        except _Retryable as err:
            now = position() if position else 0
            if now > best:
                best, failures = now, 0
            failures += 1
            if failures > retries:
                keep = f"; {kept} keeps {now} bytes and a rerun resumes" if kept and now else ""
                raise DownloadError(
                    f"giving up on {url} after {failures} failed attempts: {err}",
                    path=what,
                    fix=f"check the network and that the URL is reachable, then rerun{keep} "
                    "(or raise download.retries)",
                ) from None
            delay = err.retry_after
            if delay is None:
                delay = backoff_s * 2 ** (failures - 1)
            delay = min(max(delay, 0.0), MAX_BACKOFF_S)
            if until is not None:
                delay = min(delay, max(until - time.monotonic(), 0.0))
            log.warning("%s: %s; retry %d/%d in %.1fs", what or url, err, failures, retries, delay)
            time.sleep(delay)


_RANGE_RE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """Parse `bytes START-END/TOTAL` (or `bytes */TOTAL`) into (start, end, total)."""
    m = _RANGE_RE.match(value or "")
    if not m:
        return None, None, None
    start, end, total = m.groups()
    return _int_or_none(start), _int_or_none(end), _int_or_none(total)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _read_stamp(dest: Path) -> dict[str, Any]:
    try:
        data = json.loads(stamp_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(dest: Path, digests: dict[str, str], url: str | None) -> None:
    st = dest.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": url, **digests}
    write_json(stamp_path(dest), stamp)
