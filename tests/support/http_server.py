"""A threaded loopback HTTP server for tests: in-memory files, Range requests, fault injection.

    from tests.support.http_server import FileServer

    with FileServer({"/files/a.zip": payload}) as srv:
        url = srv.url("/files/a.zip")             # http://127.0.0.1:<port>/files/a.zip
        srv.add("/b.bin", b"...")                 # add or replace a file at any time
        srv.add_json("/api/records/1", {"files": [...]})   # served as application/json
        srv.fail("/files/a.zip", times=2)         # next 2 requests answer 500 (status=...)
        srv.cut("/files/a.zip", after=1000)       # next request: full headers, 1000 body bytes,
                                                  # then the connection is closed
        srv.corrupt("/files/a.zip")               # serve wrong bytes (same length) from now on
        srv.stall("/files/a.zip", after=10, seconds=2)  # pause mid-body (read-timeout tests)
        srv.trickle("/files/a.zip", chunk=10, interval=0.1)  # 10 bytes every 0.1 s
        srv.redirect("/old", "http://elsewhere/new")  # answer 302 with that Location
        srv.connections                           # TCP connections accepted (TLS or not)
        srv.no_range = True                       # ignore Range headers (always 200, whole file)
        srv.requests                              # every request: Request(method, path, ...)
        srv.requests_for("/files/a.zip")
        srv.ranges("/files/a.zip")                # the Range header of each request (or None)

`FileServer(tls=(certfile, keyfile))` serves HTTPS (see tests/support/tls.py for a throwaway
certificate). File responses carry an ETag (the sha256 prefix of the content) and the Last-Modified
time of the `add`. Faults form a queue per path, consumed one per request in the order added; with
an empty queue the file is served normally. `times=None` keeps a fault in effect until
`clear_faults(path)`. `after` counts bytes of that response's body. Paths are matched without the
query string (recorded in `Request.query`); unknown paths answer 404. Ranges: `bytes=N-`,
`bytes=N-M`, `bytes=-S`; a start at or past the end answers 416 with
`Content-Range: bytes */<size>`. The pytest fixture `http_server` (tests/io/conftest.py; copy it
into another conftest to reuse) yields a started FileServer.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    query: str
    range: str | None
    headers: dict[str, str]


@dataclass
class _Fault:
    kind: str  # "status" | "cut" | "corrupt" | "stall" | "trickle"
    times: int | None  # None = until cleared
    status: int = 500
    after: int = 0
    seconds: float = 0.0
    data: bytes | None = None


class _Server(ThreadingHTTPServer):
    """Counts accepted connections; wraps them in TLS when given a context."""

    daemon_threads = True

    def __init__(self, owner: FileServer, context: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        with self.owner._lock:
            self.owner.connections += 1
        if self.context is not None:  # handshake in the handler thread, not the accept loop
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed TLS handshakes and dropped clients are expected in these tests


class FileServer:
    """Serve a dict of path -> bytes on 127.0.0.1 (a free port) from a background thread."""

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        tls: tuple[str | Path, str | Path] | None = None,
    ):
        self.files: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.modified: dict[str, str] = {}
        self.redirects: dict[str, tuple[int, str]] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self.no_range = False
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._lock = threading.Lock()
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        self.scheme = "https" if tls else "http"
        self._httpd = _Server(self, context)
        self._thread: threading.Thread | None = None
        for path, data in (files or {}).items():
            self.add(path, data)

    # lifecycle
    def start(self) -> FileServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # content
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def add(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve `data` at `path`; return its URL."""
        with self._lock:
            self.files[path] = data
            self.content_types[path] = content_type
            self.modified[path] = formatdate(time.time(), usegmt=True)
        return self.url(path)

    def add_json(self, path: str, obj: Any) -> str:
        return self.add(path, json.dumps(obj).encode(), "application/json")

    # faults
    def fail(self, path: str, times: int | None = 1, status: int = 500) -> None:
        """Answer the next `times` requests for `path` with `status` (no file body)."""
        self._add_fault(path, _Fault("status", times, status=status))

    def cut(self, path: str, after: int, times: int | None = 1) -> None:
        """Send the headers and `after` body bytes, then close the connection."""
        self._add_fault(path, _Fault("cut", times, after=after))

    def corrupt(self, path: str, data: bytes | None = None, times: int | None = None) -> None:
        """Serve `data` (default: the file with every byte inverted) instead of the file."""
        self._add_fault(path, _Fault("corrupt", times, data=data))

    def stall(self, path: str, after: int, seconds: float, times: int | None = 1) -> None:
        """Send `after` body bytes, sleep `seconds`, then send the rest."""
        self._add_fault(path, _Fault("stall", times, after=after, seconds=seconds))

    def trickle(self, path: str, chunk: int, interval: float, times: int | None = 1) -> None:
        """Send the body `chunk` bytes at a time, sleeping `interval` seconds between chunks."""
        self._add_fault(path, _Fault("trickle", times, after=chunk, seconds=interval))

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer requests for `path` with a redirect to `location`; return the URL of `path`."""
        with self._lock:
            self.redirects[path] = (status, location)
        return self.url(path)

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(path, None)

    # inspection
    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def ranges(self, path: str) -> list[str | None]:
        return [r.range for r in self.requests_for(path)]

    # internals used by the handler
    def _add_fault(self, path: str, fault: _Fault) -> None:
        with self._lock:
            self._faults[path].append(fault)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
            return fault

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()  # a failure ends this connection (handle_error is quiet)
        super().setup()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner: FileServer = self.server.owner  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        path = unquote(split.path)
        range_header = self.headers.get("Range")
        owner._record(
            Request(self.command, path, split.query, range_header, dict(self.headers.items()))
        )
        with owner._lock:
            data = owner.files.get(path)
            ctype = owner.content_types.get(path, "application/octet-stream")
            modified = owner.modified.get(path)
            redirect = owner.redirects.get(path)
        if redirect is not None:
            self._plain(redirect[0], b"", {"Location": redirect[1]})
            return
        if data is None:
            self._plain(404, b"not found")
            return
        fault = owner._take_fault(path)
        if fault is not None and fault.kind == "status":
            self._plain(fault.status, b"injected error")
            return
        if fault is not None and fault.kind == "corrupt":
            data = fault.data if fault.data is not None else bytes(b ^ 0xFF for b in data)

        status, body, extra = 200, data, {}
        match = _RANGE.match(range_header or "")
        if match and not owner.no_range and (match.group(1) or match.group(2)):
            first, last = match.groups()
            size = len(data)
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(size - int(last), 0), size - 1
            if start >= size or start > end:
                self._plain(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            status, body = 206, data[start : end + 1]
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"

        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
        if modified:
            self.send_header("Last-Modified", modified)
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return
        try:
            if fault is not None and fault.kind == "cut":
                self.wfile.write(body[: fault.after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None and fault.kind == "stall":
                self.wfile.write(body[: fault.after])
                self.wfile.flush()
                time.sleep(fault.seconds)
                body = body[fault.after :]
            if fault is not None and fault.kind == "trickle":
                for i in range(0, len(body), fault.after):
                    self.wfile.write(body[i : i + fault.after])
                    self.wfile.flush()
                    time.sleep(fault.seconds)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
