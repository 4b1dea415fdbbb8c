"""A lean load client for streaming chat completions: the TTFT client of
bench/gateway_latency.py (b) and bench/stream_cpu_floor.py.

Each of `streams` keep-alive connections sends its next request as soon as the previous
answer ended. The answer is parsed by httptools (the C parser the gateway itself uses),
and a request's TTFT is the moment the first SSE piece with non-empty `content` arrived,
found by a byte search in the decoded body; nothing else is parsed. The previous client
(aiohttp, every SSE line read and its JSON parsed until the first content) took about 0.6
of this machine's 2 cores for 200 short streams, the same cores the relay under test and
fake-llm run on; this one takes about a third of that. Both benchmarks run the previous
client with `--client aiohttp`.

Rows, as the aiohttp client's: (start since t0 s, ttft s or NaN, total s or NaN, status).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httptools

# the first piece with content: `"content":"` and not an empty string right after it
_CONTENT = re.compile(rb'"content"\s*:\s*"(?!")')


class _Stream(asyncio.Protocol):
    """One connection, one request at a time, the next sent when an answer ends."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.start = 0.0
        self.ttft = math.nan
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.live.add(self)
        self.send()

    def send(self) -> None:
        if time.perf_counter() >= self.run.end or self.transport is None:
            if self.transport is not None:
                self.transport.close()
            return
        self.parser = httptools.HttpResponseParser(self)
        self.ttft = math.nan
        self.busy = True
        self.start = time.perf_counter()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(type(exc).__name__)

    def on_body(self, body: bytes) -> None:
        if self.ttft != self.ttft and _CONTENT.search(body):
            self.ttft = time.perf_counter() - self.start

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        status = self.parser.get_status_code()
        self.busy = False
        ok = status == 200
        self.run.rows.append(
            (
                self.start - self.run.t0,
                self.ttft if ok else math.nan,
                now - self.start if ok else math.nan,
                status,
            )
        )
        if not self.parser.should_keep_alive():
            if self.transport is not None:
                self.transport.close()
            return
        asyncio.get_running_loop().call_soon(self.send)

    def fail(self, kind: str) -> None:
        self.run.count(kind)
        self.busy = False
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.busy = False
            self.run.count(type(exc).__name__ if exc else "closed mid-answer")
        self.transport = None
        self.run.live.discard(self)
        self.run.reconnect()


class _Run:
    def __init__(self, cfg: dict[str, Any]) -> None:
        u = urlsplit(cfg["url"])
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        body = cfg["body"].encode()
        head = [f"POST {u.path or '/'} HTTP/1.1", f"host: {u.netloc}"]
        head += [f"{k}: {v}" for k, v in cfg["headers"].items()]
        head += ["content-type: application/json", f"content-length: {len(body)}", "", ""]
        self.request = "\r\n".join(head).encode() + body
        self.timeout = float(cfg["timeout"])
        self.rows: list[tuple[float, float, float, int]] = []
        self.errors: dict[str, int] = {}
        self.live: set[_Stream] = set()
        self.t0 = time.perf_counter()
        self.end = self.t0 + cfg["warmup"] + cfg["duration"]
        self.done: asyncio.Future[None] | None = None

    def count(self, error: str) -> None:
        self.errors[error] = self.errors.get(error, 0) + 1

    def reconnect(self) -> None:
        if time.perf_counter() < self.end:
            asyncio.get_running_loop().create_task(self.open())
        elif not self.live and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _Stream(self), self.host, self.port)
        except OSError as exc:
            self.count(type(exc).__name__)
            await asyncio.sleep(0.05)
            self.reconnect()

    async def sweep(self) -> None:
        """Abort answers older than the timeout, once a second."""
        while True:
            await asyncio.sleep(1.0)
            now = time.perf_counter()
            for s in list(self.live):
                if s.busy and now - s.start > self.timeout:
                    s.fail("timeout")


async def run_streams(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg`: url, headers, body, streams, warmup, duration, timeout. The streams open
    spread over the first 0.5 s (200 simultaneous connects would otherwise be measured
    as everybody's TTFT)."""
    loop = asyncio.get_running_loop()
    run = _Run(cfg)
    run.done = loop.create_future()
    n = cfg["streams"]
    for k in range(n):
        loop.call_later(0.5 * k / n, lambda: loop.create_task(run.open()))
    sweeper = loop.create_task(run.sweep())
    remaining = run.end - time.perf_counter() + run.timeout + 5.0
    try:
        await asyncio.wait_for(run.done, max(remaining, 1.0))
    except TimeoutError:
        run.errors["never finished"] = len(run.live)
    sweeper.cancel()
    for s in list(run.live):
        if s.transport is not None:
            s.transport.abort()
    t0_wall = time.time() - (time.perf_counter() - run.t0)
    return {"rows": run.rows, "errors": run.errors, "t0_wall": t0_wall, "t0_mono": run.t0}
