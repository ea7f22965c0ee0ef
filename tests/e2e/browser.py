"""Headless Chromium driven over the DevTools protocol: open a page, wait for text, screenshot.

No browser-automation package is needed: Chromium is started with `--remote-debugging-port=0`,
the port is read from `DevToolsActivePort` in its fresh profile, and commands go over the page
target's websocket (aiohttp's client, which MLflow already depends on).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import stop_process_group

Expected = str | re.Pattern[str]  # a substring of the page's text, or a pattern to search
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """$AVER_CHROMIUM, else the first of chromium / chromium-browser / google-chrome on PATH."""
    env = os.environ.get("AVER_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class PageTimeout(AssertionError):
    """The expected text did not appear in time; carries the text the page showed."""

    def __init__(self, url: str, missing: Sequence[Expected], text: str, timeout_s: float) -> None:
        super().__init__(
            f"{url}: {[getattr(m, 'pattern', m) for m in missing]} not shown after "
            f"{timeout_s:.0f}s; page text:\n{text[:3000]}"
        )
        self.text = text


class HeadlessChromium:
    """One headless Chromium process with a throw-away profile; use as a context manager."""

    def __init__(
        self,
        binary: str,
        profile_dir: Path,
        *,
        window: tuple[int, int] = (1400, 900),
        start_timeout_s: float = 30.0,
    ) -> None:
        self.binary = binary
        self.profile_dir = Path(profile_dir)
        self.window = window
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.profile_dir.parent / f"{self.profile_dir.name}.log"
        self._loop = asyncio.new_event_loop()
        self._ids = itertools.count(1)

    def __enter__(self) -> HeadlessChromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile_dir}",
            f"--window-size={self.window[0]},{self.window[1]}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run sandboxed as root
        args.append("about:blank")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_for_port(self) -> int:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"chromium exited with {self.proc.returncode}: {self.log_tail()}"
                )
            lines = marker.read_text().splitlines() if marker.is_file() else []
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
            time.sleep(0.1)
        raise RuntimeError(f"chromium did not open its DevTools port: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.is_file() else ""

    def close(self) -> None:
        """Terminate Chromium's whole process group (renderers, GPU and zygote processes)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            stop_process_group(proc)
        if not self._loop.is_closed():
            self._loop.close()

    def _page_ws_url(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise RuntimeError(f"chromium has no page target: {targets}")
        return pages[0]["webSocketDebuggerUrl"]

    def render(
        self,
        url: str,
        expect: Sequence[Expected],
        screenshot: Path,
        *,
        script: str | None = None,
        expect_after: Sequence[Expected] = (),
        timeout_s: float = 30.0,
        settle_s: float = 1.0,
    ) -> str:
        """Open `url` afresh, wait until the page's text holds every `expect` string, save a PNG.

        `script`: JavaScript run once they are there (type a filter, close a panel, scroll);
        then the text must also hold every `expect_after` string. Returns the page's visible
        text (document.body.innerText). Raises PageTimeout (an AssertionError) with the text
        shown, after saving the screenshot, when a wait runs out.
        """
        return self._loop.run_until_complete(
            self._render(
                url, list(expect), Path(screenshot), script, list(expect_after), timeout_s, settle_s
            )
        )

    async def _render(
        self,
        url: str,
        expect: list[Expected],
        screenshot: Path,
        script: str | None,
        expect_after: list[Expected],
        timeout_s: float,
        settle_s: float,
    ) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self._page_ws_url(), max_msg_size=0) as ws,
        ):
            width, height = self.window
            await self._call(
                ws,
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            # A blank page first: a new #fragment alone would keep the previous page's text.
            await self._call(ws, "Page.navigate", url="about:blank")
            await self._call(ws, "Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            text, missing = await self._wait_for(ws, expect, deadline)
            if not missing and script:
                await self.evaluate(ws, script)
                text, missing = await self._wait_for(ws, expect_after, deadline)
            if not missing:
                await asyncio.sleep(settle_s)  # let charts and late cells paint
                text = await self._text(ws)
            shot = await self._call(ws, "Page.captureScreenshot", format="png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            if missing:
                raise PageTimeout(url, missing, text, timeout_s)
            return text

    async def _wait_for(
        self, ws: aiohttp.ClientWebSocketResponse, expect: list[Expected], deadline: float
    ) -> tuple[str, list[Expected]]:
        """Poll the page's text until it holds every expectation or the deadline passes."""
        while True:
            try:
                text = await self._text(ws)
            except RuntimeError:  # e.g. the context went away while the page was navigating
                text = ""
            missing = [e for e in expect if not _shows(text, e)]
            if not missing or time.monotonic() > deadline:
                return text, missing
            await asyncio.sleep(0.25)

    async def _text(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        return str(await self.evaluate(ws, "document.body ? document.body.innerText : ''") or "")

    async def evaluate(self, ws: aiohttp.ClientWebSocketResponse, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page, promises awaited; errors raise."""
        res = await self._call(
            ws, "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def _call(
        self, ws: aiohttp.ClientWebSocketResponse, method: str, **params: Any
    ) -> dict[str, Any]:
        msg_id = next(self._ids)
        await ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(ws.receive(), timeout=30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools connection closed during {method}: {msg}")
            data = json.loads(msg.data)
            if data.get("id") != msg_id:
                continue  # an event, or a reply to an earlier call
            if "error" in data:
                raise RuntimeError(f"DevTools {method} failed: {data['error']}")
            return data.get("result", {})


def _shows(text: str, expected: Expected) -> bool:
    return expected in text if isinstance(expected, str) else bool(expected.search(text))
