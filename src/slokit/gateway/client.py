"""The gateway's upstream HTTP/1.1 client: a keep-alive connection pool per upstream,
requests written as bytes, responses parsed by httptools.

Chosen by measurement (docs/gateway.md, bench/gateway_throughput.py): with the same
server side, this client let the proxy do more requests per second than aiohttp's
ClientSession, whose per-request object graph (ClientRequest, CIMultiDict headers,
payload wrappers, timers) dominated the gateway's CPU profile. aiohttp stays the
client for everything off the hot path (health checks, event delivery).

What it does and does not do: one request per connection at a time (no pipelining),
keep-alive reuse, `http://` and `https://`, a connect timeout, a first-byte timeout
(request sent -> response head) and a total timeout, body bytes passed through as
received (chunked framing is removed by the parser; content encodings are left alone),
read back-pressure for slow clients. A request is sent once: a POST that reached the
upstream may have started a generation, so a failure is not replayed here (the proxy may
try another upstream, `retries`). To keep from sending on a connection the upstream is
closing as idle, a connection idle for `idle_s` (4 s, below the 5 s keep-alive of
uvicorn-served engines such as vLLM) is closed instead of reused.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 1 << 20  # buffered response bytes above which the upstream read pauses


class UpstreamError(Exception):
    """The upstream failed; `before_first_byte` says whether a retry is safe."""

    def __init__(self, message: str, before_first_byte: bool) -> None:
        super().__init__(message)
        self.before_first_byte = before_first_byte


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The upstream did not connect, answer or finish in time."""


class _Conn(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_buffered",
        "_done",
        "_head",
        "_headers",
        "_paused",
        "_waiter",
        "closed",
        "complete",
        "deadline",
        "error",
        "head_deadline",
        "idle_since",
        "keep_alive",
        "parser",
        "pool",
        "sink",
        "status",
        "transport",
    )

    def __init__(self, pool: UpstreamClient) -> None:
        self.pool = pool
        self.transport: Any = None
        self.closed = False
        # loop.time() by which the response must be complete / its head in (inf: no
        # request in flight); `UpstreamClient._sweep` enforces them
        self.deadline = self.head_deadline = math.inf
        self.idle_since = 0.0  # loop.time() when it went back to the pool
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        # relay mode (`Response.relay`): body pieces go straight to `sink`, from this
        # protocol's callback, with no buffering and no task switch per piece
        self.sink: Callable[[bytes], asyncio.Future[None] | None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed upstream response: {exc}", not self._headers))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            head_done = self._head is not None and self._head.done()
            reason = f": {exc}" if exc else ""
            self._fail(UpstreamError(f"upstream closed the connection{reason}", not head_done))

    # -- httptools callbacks -----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            try:
                wait = sink(body)
            except Exception as exc:  # the consumer's bug: end the relay with it
                self._drop(exc)
                return
            if wait is not None and not self._paused:
                # the client reads slower than the upstream writes: stop reading
                # upstream until the client's buffer drains
                self._paused = True
                self.transport.pause_reading()
                wait.add_done_callback(self._unpause)
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        self._wake()

    # -- plumbing ----------------------------------------------------------------------

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _unpause(self, _: object) -> None:
        if self._paused and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        w = self._waiter
        if w is not None and not w.done():
            w.set_exception(error)

    def _drop(self, error: BaseException) -> None:
        """End the response with `error` and the connection at once: marked closed now,
        not when the loop gets to `connection_lost`, so a release never pools it."""
        self.sink = None
        self._fail(error)
        self.closed = True
        self.transport.abort()

    def time_out(self) -> None:
        self._fail(UpstreamTimeout("the upstream did not answer in time", not self._headers))
        if self.transport is not None:
            self.transport.abort()


class Response:
    """An upstream answer whose head has arrived; read or stream its body once."""

    __slots__ = ("_conn", "_released", "headers", "status")

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = conn._headers
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    async def read(self) -> bytes:
        parts = []
        async for piece in self.chunks():
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        c = self._conn
        loop = c.pool.loop
        while True:
            if c._body:
                data = c._body.popleft() if len(c._body) == 1 else _drain(c._body)
                c._buffered = 0
                if c._paused:
                    c._paused = False
                    c.transport.resume_reading()
                yield data
                continue
            if c.complete:
                return
            if c.error is not None:
                raise c.error
            c._waiter = loop.create_future()
            await c._waiter
            c._waiter = None

    async def relay(self, sink: Callable[[bytes], asyncio.Future[None] | None]) -> None:
        """Hand each body piece to `sink` as it arrives, called from the connection's
        own read callback; return once the body is complete. `sink` returns a future
        to pause reading the upstream until it is done (back-pressure), or None.

        Measured cheaper than `chunks()` for streams (docs/gateway.md): no future and
        no task switch per piece, which is most of what relaying a small SSE chunk
        costs."""
        c = self._conn
        while c._body:  # what arrived before the relay began
            try:
                wait = sink(c._body.popleft())
            except Exception as exc:  # as from the read callback: the connection ends
                c._drop(exc)
                raise
            if wait is not None:
                await wait
        c._buffered = 0
        if c._paused:
            c._paused = False
            c.transport.resume_reading()
        if c.complete:
            return
        if c.error is not None:
            raise c.error
        c.sink = sink
        c._waiter = c.pool.loop.create_future()
        try:
            await c._waiter  # set when the body is complete, or failed
        finally:
            c.sink = None
            c._waiter = None

    def release(self) -> None:
        """Done with it: a complete keep-alive connection goes back to the pool."""
        if self._released:
            return
        self._released = True
        c = self._conn
        pool = c.pool
        pool._done(c)
        if (
            c.complete
            and c.keep_alive
            and not c.closed
            and not c._body
            and (len(pool._idle) < pool.max_idle)
        ):
            if c._paused:  # a relay paused reading as the body ended
                c.transport.resume_reading()
            c._reset()
            c.idle_since = pool.loop.time()
            pool._idle.append(c)
        else:
            c.closed = True
            if c.transport is not None:
                c.transport.close()

    def close(self) -> None:
        """Abandon it (the client went away): the upstream connection is dropped, which
        cancels the request upstream."""
        if self._released:
            return
        self._released = True
        c = self._conn
        c.pool._done(c)
        c.closed = True
        if c.transport is not None:
            c.transport.abort()


def _drain(body: deque[bytes]) -> bytes:
    data = b"".join(body)
    body.clear()
    return data


class UpstreamClient:
    """Connections to one upstream base URL."""

    def __init__(
        self,
        url: str,
        connect_timeout_s: float = 5.0,
        first_byte_timeout_s: float = 120.0,
        total_timeout_s: float = 600.0,
        max_idle: int = 1024,
        idle_s: float = 4.0,
    ) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{url}: an upstream url is http(s)://host[:port][/path]")
        self.host = u.hostname
        self.tls = u.scheme == "https"
        self.port = u.port or (443 if self.tls else 80)
        self.base = u.path.rstrip("/").encode()
        default = (self.port == 443) if self.tls else (self.port == 80)
        self.host_header = (self.host if default else f"{self.host}:{self.port}").encode()
        self.connect_timeout_s = connect_timeout_s
        self.first_byte_timeout_s = first_byte_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_idle = max_idle
        self.idle_s = idle_s
        self._idle: deque[_Conn] = deque()
        self._busy: set[_Conn] = set()  # connections with a request in flight
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick_s = min(max(min(first_byte_timeout_s, total_timeout_s) / 20, 0.005), 0.5)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None
        self.loop = asyncio.get_event_loop()

    async def _connect(self) -> _Conn:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Conn(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self.tls else None,
                ),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise UpstreamTimeout(
                f"connecting to {self.host}:{self.port} timed out", True
            ) from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}", True) from None
        return conn

    def _take(self) -> _Conn | None:
        """The most recently used idle connection, unless it has been idle `idle_s` or
        more: then it and all the older ones are closed."""
        while self._idle:
            c = self._idle.pop()
            if c.closed:
                continue
            if self.loop.time() - c.idle_since < self.idle_s:
                return c
            self._idle.append(c)  # the newest is too old: so are the others
            self._close_idle()
        return None

    def _close_idle(self) -> None:
        while self._idle:
            c = self._idle.pop()
            c.closed = True
            if c.transport is not None:
                c.transport.close()

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        """Send a request; return once the response head is in."""
        head = b"".join(
            [
                method,
                b" ",
                self.base,
                target,
                b" HTTP/1.1\r\nhost: ",
                self.host_header,
                b"\r\ncontent-length: %d\r\n" % len(body),
                *[k + b": " + v + b"\r\n" for k, v in headers],
                b"\r\n",
            ]
        )
        conn = self._take() or await self._connect()
        return await self._send(conn, head, body)

    async def _send(self, conn: _Conn, head: bytes, body: bytes) -> Response:
        conn._head = self.loop.create_future()
        now = self.loop.time()
        conn.head_deadline = now + self.first_byte_timeout_s
        conn.deadline = now + self.total_timeout_s
        self._busy.add(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._tick_s, self._sweep)
        try:
            conn.transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.transport.write(body)
            await conn._head
        except BaseException:
            self._done(conn)
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
            raise
        conn.head_deadline = math.inf
        return Response(conn)

    def _done(self, conn: _Conn) -> None:
        """`conn` has no request in flight any more: no deadline to watch."""
        conn.deadline = conn.head_deadline = math.inf
        self._busy.discard(conn)

    def _sweep(self) -> None:
        """Time out the requests past a deadline; runs every `_tick_s` while any request
        is in flight. One timer for all of them is cheaper than two of its own for each
        request (under uvloop a `call_later` and its `cancel` measured about 3 us, so 6
        us a request); the price is that a timeout fires up to one tick late (5% of the
        shortest timeout, at most 0.5 s)."""
        self._sweeper = None
        if not self._busy:
            return
        now = self.loop.time()
        late = [c for c in self._busy if now >= c.deadline or now >= c.head_deadline]
        for c in late:
            self._done(c)
            c.time_out()
        if self._busy:
            self._sweeper = self.loop.call_later(self._tick_s, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._close_idle()
