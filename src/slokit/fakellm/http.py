"""The fake's HTTP/1.1 server side: an asyncio Protocol around httptools' parser.

Chosen by measurement over aiohttp's low-level `web.Server` (docs/fake-llm.md): the
handler may answer inside the parser callback, with no task per request, which is what
a zero-delay fake needs. A connection runs one request at a time; pipelined requests
wait in order. When the client goes away, the running request's task is cancelled.
Headers are kept as received (names in their original case, repeats kept) so that the
stats endpoint can show what a proxy sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

import httptools

from slokit.httpwire import reason

log = logging.getLogger("slokit.fakellm")

_LINGER_RST = struct.pack("ii", 1, 0)
MAX_BODY = 64 << 20
JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"


class App(Protocol):
    def dispatch(self, conn: Connection, req: Request) -> Coroutine[Any, Any, None] | None:
        """Answer `req` now (return None) or return a coroutine to run as a task."""

    def connection_opened(self, conn: Connection) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


class Request:
    __slots__ = ("body", "fake", "headers", "keep_alive", "method", "path", "query", "url")

    def __init__(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        fake: dict[bytes, bytes],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.url = url
        path, _, query = url.partition(b"?")
        self.path = path
        self.query = query
        self.headers = headers  # as received
        self.fake = fake  # the x-fake-* headers, lower-case names
        self.body = body
        self.keep_alive = keep_alive


def head(
    status: int,
    content_type: bytes,
    length: int | None,
    keep_alive: bool = True,
    extra: bytes = b"",
) -> bytes:
    """A response head; `length=None` means a chunked body follows. `extra` holds
    complete header lines, each ending in CRLF."""
    key = (status, content_type, keep_alive)
    start = _STARTS.get(key)
    if start is None:
        start = _STARTS[key] = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s" % (
            status,
            reason(status),
            content_type,
            b"" if keep_alive else b"connection: close\r\n",
        )
    if length is None:
        return start + b"transfer-encoding: chunked\r\n" + extra + b"\r\n"
    return start + b"content-length: %d\r\n" % length + extra + b"\r\n"


_STARTS: dict[tuple[int, bytes, bool], bytes] = {}


class Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_drain",
        "_fake",
        "_headers",
        "_loop",
        "_pending",
        "_url",
        "app",
        "closed",
        "parser",
        "task",
        "transport",
    )

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._pending: deque[Request] = deque()
        self._drain: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._fake: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.app.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self.reject(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pending.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.app.connection_closed(self)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._fake = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if name[:7].lower() == b"x-fake-":
            self._fake[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self.closed:
            return
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(body) > MAX_BODY:
            self.reject(413, f"request body larger than {MAX_BODY} bytes")
            return
        req = Request(
            self.parser.get_method(),
            self._url,
            self._headers,
            self._fake,
            body,
            self.parser.should_keep_alive(),
        )
        if self.task is None and not self._pending:
            self._run(req)
        else:
            self._pending.append(req)

    # -- running requests --------------------------------------------------------------

    def _run(self, req: Request) -> None:
        try:
            coro = self.app.dispatch(self, req)
        except Exception:
            log.exception("fake-llm: error answering %s %s", req.method, req.url)
            self.reject(500, "internal fake-llm error")
            return
        if coro is not None:
            self.task = self._loop.create_task(coro)
            self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if not task.cancelled() and task.exception() is not None and not self.closed:
            log.error("fake-llm: error answering a request", exc_info=task.exception())
            self.reject(500, "internal fake-llm error")
            return
        while self._pending and self.task is None and not self.closed:
            self._run(self._pending.popleft())

    # -- writing -----------------------------------------------------------------------

    def send(
        self,
        status: int,
        body: bytes,
        keep_alive: bool,
        content_type: bytes = JSON,
        extra: bytes = b"",
    ) -> None:
        """A whole response; closes the connection when the request did not keep it."""
        if self.closed or self.transport is None:
            return
        self.transport.write(head(status, content_type, len(body), keep_alive, extra) + body)
        if not keep_alive:
            self.close()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            await self._drain

    def close(self) -> None:
        """Close after what was written is sent (FIN)."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once, discarding anything unsent."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def reset(self) -> None:
        """Drop the connection with a TCP RST, discarding anything unsent."""
        if self.transport is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.transport.abort()

    def reject(self, status: int, message: str) -> None:
        from slokit.fakellm.shapes import error

        self.send(status, error(message, status), keep_alive=False)
        self.close()
