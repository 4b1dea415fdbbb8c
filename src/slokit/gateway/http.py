"""The gateway's HTTP/1.1 server side: an asyncio Protocol around httptools' parser.

No framework sits on the per-request path (measured: Starlette routing over aiohttp cost
17-30% of throughput, and uvicorn's ASGI layer about 20% more than this protocol; see
docs/gateway.md). A connection runs one request at a time; pipelined requests wait in
order. When the client goes away, the connection's task is cancelled, which closes the
upstream request too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import httptools

from slokit.httpwire import REASONS, reason

log = logging.getLogger("slokit.gateway")

Handler = Callable[["Connection", "Request"], Coroutine[Any, Any, None]]


class Request:
    __slots__ = (
        "body",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "t0",
        "too_large",
        "wall",
    )

    def __init__(
        self,
        method: bytes,
        url: bytes,
        headers: dict[bytes, bytes],
        body: bytes,
        t0: float,
        wall: float,
        keep_alive: bool,
        too_large: bool,
    ) -> None:
        self.method = method
        path, _, query = url.partition(b"?")
        self.path = path
        self.query = query
        self.headers = headers  # lower-case names; the last value of a repeated header
        self.body = body
        self.t0 = t0  # perf_counter() when the request began arriving
        self.wall = wall  # time.time() at the same moment
        self.keep_alive = keep_alive
        self.too_large = too_large


def head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    length: int | None,
    keep_alive: bool = True,
) -> bytes:
    """A response head; `length=None` means a chunked body follows. (One join over
    the pieces: 1.3 us against 2.3 us joining a line per header.)"""
    parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d %s\r\n" % (status, reason(status))]
    for k, v in headers:
        parts += (k, b": ", v, b"\r\n")
    if length is None:
        parts.append(b"transfer-encoding: chunked\r\n")
    else:
        parts.append(b"content-length: %d\r\n" % length)
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in REASONS.items()}


class Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_busy",
        "_drain",
        "_headers",
        "_last",
        "_loop",
        "_next",
        "_pending",
        "_size",
        "_t0",
        "_url",
        "_wall",
        "closed",
        "handler",
        "live",
        "max_body",
        "parser",
        "task",
        "transport",
    )

    def __init__(self, handler: Handler, max_body: int, live: set[Connection]) -> None:
        self.handler = handler
        self.max_body = max_body
        self.live = live  # the server's open connections, for a clean shutdown
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None  # `_serve`, from the first request on
        self.closed = False
        self._busy = False  # a request is being handled
        self._last = False  # close once the requests read so far are answered
        self._pending: deque[Request] = deque()
        self._next: asyncio.Future[Request] | None = None  # `_serve` waits on it when idle
        self._drain: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._t0 = 0.0
        self._wall = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.live.add(self)
        self._loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._malformed(b"protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._malformed(f"malformed HTTP request: {exc}".encode())

    def _malformed(self, message: bytes) -> None:
        """Bytes that are not a request: answered 400 and closed, unless an answer is
        under way (a 400 must not land inside it): then the requests already read are
        answered and the connection closes after them."""
        if not self.busy:
            self.reject(400, message)
            return
        self._last = True
        if self.transport is not None:
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.live.discard(self)
        self._pending.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client went away: stop the upstream request too
        self._next = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._t0 = time.perf_counter()
        self._wall = time.time()
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers[name] = value
        if name == b"expect" and value.lower() == b"100-continue" and not self.busy:
            # the client (curl, for a body over 1 MiB) waits for this before the body
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= self.max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(
            self.parser.get_method(),
            self._url,
            self._headers,
            body,
            self._t0,
            self._wall,
            self.parser.should_keep_alive(),
            self._size > self.max_body,
        )
        nxt = self._next
        if nxt is not None:
            self._next = None
            self._busy = True  # from now, not from when `_serve` next runs
            nxt.set_result(req)
        else:
            self._pending.append(req)
            if self.task is None:
                self.task = self._loop.create_task(self._serve())

    # -- running requests --------------------------------------------------------------

    async def _serve(self) -> None:
        """The connection's requests, one at a time, in one task for the connection's
        life: a task per request (its creation, registration and done callback) cost
        about 3.5 us more a request under uvloop. Cancelled when the client goes away,
        which cancels the request being handled."""
        pending, loop = self._pending, self._loop
        while not self.closed:
            if pending:
                req = pending.popleft()
            else:
                self._next = loop.create_future()
                req = await self._next
            self._busy = True
            try:
                await self.handler(self, req)
            except Exception:
                log.exception("the gateway failed on a request")
                if not self.closed:
                    self.reject(500, b"internal gateway error")
                return
            finally:
                self._busy = False
            if self._last and not pending:
                self.close()
                return

    @property
    def busy(self) -> bool:
        """A request has arrived whole and is not answered yet."""
        return self._busy or bool(self._pending)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    @property
    def paused(self) -> asyncio.Future[None] | None:
        """The future that completes when the client's send buffer drains, while it is
        full; else None."""
        d = self._drain
        return d if d is not None and not d.done() else None

    async def drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            await self._drain

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (a stream that broke upstream must look broken)."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def reject(self, status: int, message: bytes) -> None:
        body = (
            b'{"error":{"message":"%s","type":"invalid_request_error","param":null,"code":null}}'
            % (message.replace(b'"', b"'"))
        )
        self.write(head(status, [(b"content-type", b"application/json")], len(body), False) + body)
        self.close()
