"""An authenticating reverse proxy on 127.0.0.1 for tests (e.g. in front of a real mlflow server).

    with AuthProxy("http://127.0.0.1:5000", user="alice", password="pw", token="tok") as proxy:
        proxy.url                      # http://127.0.0.1:<port>
        proxy.seen                     # every request: Seen(method, path, how)

A request is forwarded only with HTTP basic auth user:password, `Authorization: Bearer <token>`
or `?token=<token>` (how = "basic" / "bearer" / "query"); others get 401 (how = None). The
credentials are removed before forwarding, so the upstream server never stores them.
"""

from __future__ import annotations

import base64
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "authorization"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    how: str | None  # "basic" | "bearer" | "query" | None (refused)


class AuthProxy:
    """Forward authenticated requests to `upstream`; refuse the rest with 401."""

    def __init__(self, upstream: str, *, user: str, password: str, token: str):
        up = urlsplit(upstream)
        self.upstream = (up.hostname or "127.0.0.1", up.port or 80)
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.token = token
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def __enter__(self) -> AuthProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()

    def authenticate(self, headers: Any, query: list[tuple[str, str]]) -> str | None:
        auth = headers.get("Authorization", "")
        if auth == self.basic:
            return "basic"
        if auth == f"Bearer {self.token}":
            return "bearer"
        if ("token", self.token) in query:
            return "query"
        return None

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._forward()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _forward(self) -> None:
        owner: AuthProxy = self.server.owner  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        body = self._body()
        how = owner.authenticate(self.headers, query)
        owner.record(Seen(self.command, split.path, how))
        if how is None:
            self._reply(401, {"WWW-Authenticate": 'Basic realm="test"'}, b"unauthorized")
            return
        path = urlunsplit(
            ("", "", split.path, urlencode([q for q in query if q[0] != "token"]), "")
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn = http.client.HTTPConnection(*owner.upstream, timeout=60)
        try:
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            extra = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            self._reply(resp.status, extra, data)
        finally:
            conn.close()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
