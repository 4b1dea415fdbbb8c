"""Relaying a stream (`Response.relay`): back-pressure from a slow client to the
upstream, a failing sink, pieces that came before the relay began, and a connection
that goes back to the pool paused. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httptools
import pyarrow as pa
import pytest
import uvloop
from aiohttp import web

from slokit.gateway.client import UpstreamClient, _Conn
from slokit.gateway.config import loads_gateway
from slokit.gateway.runner import build
from slokit.httpwire import LAST_CHUNK, chunk

from conftest import aiohttp_app

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)

# one response, written as told: it gets the connection's writer and its request count
Respond = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted_upstream(respond: Respond) -> AsyncIterator[str]:
    """An HTTP/1.1 server that answers each request with `respond`, so a test decides
    which bytes go out together (one write) and when."""
    served = 0
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:  # keep-alive: one request after another
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                served += 1
                await respond(writer, served)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)  # the transports finish closing


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.005)


# -- the upstream client's relay -------------------------------------------------------


def test_pieces_that_came_before_the_relay_go_to_the_sink_first_in_order() -> None:
    asyncio.run(_pieces_before_relay())


async def _pieces_before_relay() -> None:
    go = asyncio.Event()

    async def respond(w: asyncio.StreamWriter, n: int) -> None:
        w.write(SSE_HEAD + chunk(b"a") + chunk(b"b") + chunk(b"c"))
        await go.wait()  # the relay has begun
        w.write(chunk(b"d") + chunk(b"e") + LAST_CHUNK)

    async with scripted_upstream(respond) as url:
        client = UpstreamClient(url)
        resp = await client.request(b"POST", b"/v1/chat/completions", [], b"{}")
        await eventually(lambda: len(resp._conn._body) == 3)
        assert list(resp._conn._body) == [b"a", b"b", b"c"]  # in before the relay
        got: list[bytes] = []

        def sink(piece: bytes) -> None:
            got.append(piece)
            go.set()

        await asyncio.wait_for(resp.relay(sink), 5)
        assert got == [b"a", b"b", b"c", b"d", b"e"]
        resp.release()
        client.close()


@pytest.mark.parametrize(
    ("fail_on", "sunk"),
    [
        pytest.param(b"a", [], id="on a piece that came before the relay"),
        pytest.param(b"c", [b"a", b"b"], id="on the last piece, read with the end of the body"),
    ],
)
def test_a_sink_that_raises_ends_the_relay_and_the_connection(
    fail_on: bytes, sunk: list[bytes]
) -> None:
    asyncio.run(_sink_raises(fail_on, sunk))


async def _sink_raises(fail_on: bytes, sunk: list[bytes]) -> None:
    go = asyncio.Event()

    async def respond(w: asyncio.StreamWriter, n: int) -> None:
        if n > 1:  # the next request, on a new connection
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext")
            return
        w.write(SSE_HEAD + chunk(b"a"))
        await go.wait()
        w.write(chunk(b"b") + chunk(b"c") + LAST_CHUNK)  # one read, the end included

    async with scripted_upstream(respond) as url:
        client = UpstreamClient(url)
        resp = await client.request(b"POST", b"/v1/chat/completions", [], b"{}")
        await eventually(lambda: len(resp._conn._body) == 1)
        conn = resp._conn
        got: list[bytes] = []
        bug = ValueError("the client's bug")

        def sink(piece: bytes) -> None:
            go.set()
            if piece == fail_on:
                raise bug
            got.append(piece)

        with pytest.raises(ValueError) as raised:
            async with asyncio.timeout(5):  # in this task: no extra turns of the loop
                await resp.relay(sink)
        assert raised.value is bug and got == sunk
        assert conn.closed and conn.transport.is_closing()
        resp.release()  # as a caller done with it would
        assert not client._idle  # not back in the pool
        again = await client.request(b"POST", b"/v1/chat/completions", [], b"{}")
        assert again._conn is not conn and await again.read() == b"next"
        again.release()
        client.close()


def test_a_connection_released_while_paused_by_a_relay_reads_on_its_next_use() -> None:
    asyncio.run(_released_paused())


async def _released_paused() -> None:
    go = asyncio.Event()

    async def respond(w: asyncio.StreamWriter, n: int) -> None:
        if n > 1:
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext")
            return
        w.write(SSE_HEAD + chunk(b"a"))
        await go.wait()
        w.write(chunk(b"b") + LAST_CHUNK)  # one read: paused on `b` as the body ends

    async with scripted_upstream(respond) as url:
        client = UpstreamClient(url, first_byte_timeout_s=2)
        resp = await client.request(b"POST", b"/v1/chat/completions", [], b"{}")
        await eventually(lambda: len(resp._conn._body) == 1)
        conn = resp._conn
        never = asyncio.get_running_loop().create_future()  # a client that never drains

        def sink(piece: bytes) -> asyncio.Future[None] | None:
            go.set()
            return None if piece == b"a" else never

        await asyncio.wait_for(resp.relay(sink), 5)
        assert conn._paused  # the body ended with reading paused
        resp.release()
        assert list(client._idle) == [conn]
        again = await client.request(b"POST", b"/v1/chat/completions", [], b"{}")
        assert again._conn is conn  # reused, and reading: the answer came in
        assert await asyncio.wait_for(again.read(), 5) == b"next"
        again.release()
        never.cancel()
        client.close()


# -- back-pressure through the gateway -------------------------------------------------

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"%d %s"}}]}\n\n'


@pytest.mark.parametrize(
    "loop_factory",
    [
        pytest.param(asyncio.new_event_loop, id="asyncio"),
        pytest.param(uvloop.new_event_loop, id="uvloop"),
    ],
)
def test_a_client_that_does_not_read_pauses_the_upstream_and_loses_nothing(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_back_pressure())


async def _back_pressure() -> None:
    # 8 MB: more than the socket buffers between the gateway and the client hold (Linux
    # lets a send buffer grow to 4 MB by default), so the gateway has to hold back
    sse = b"".join(EVENT % (i, b"x" * 2000) for i in range(4000))
    upstream_done = asyncio.Event()

    async def stream(req: web.Request) -> web.StreamResponse:
        if req.method == "GET":  # the health probe
            return web.json_response({"object": "list", "data": []})
        await req.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(req)
        for i in range(0, len(sse), 1 << 16):  # as fast as the gateway reads
            await resp.write(sse[i : i + (1 << 16)])
        await resp.write_eof()
        upstream_done.set()
        return resp

    async with aiohttp_app(stream) as url:
        await _relay_through_gateway(url, sse, upstream_done)


async def _relay_through_gateway(url: str, sse: bytes, upstream_done: asyncio.Event) -> None:
    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        return None  # the events are not what this test checks

    config = loads_gateway(
        f"apiVersion: slokit/v1\nkind: gateway\nport: 0\n"
        f"upstreams:\n  - {{name: u0, url: '{url}'}}\n",
        "gw.yaml",
    )
    gw = build(config, deliver)
    await gw.start()
    conns = _record_connections(gw.clients["u0"])
    writer: asyncio.StreamWriter | None = None
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)  # a small window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 14)
        body = b'{"model": "m", "stream": true, "messages": []}'
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        # the client reads nothing: the gateway stops reading its upstream ...
        await eventually(lambda: bool(conns) and conns[0]._paused)
        (downstream,) = gw.connections
        assert downstream.transport is not None
        for _ in range(10):  # ... and stays stopped, holding little itself
            await asyncio.sleep(0.03)
            assert conns[0]._paused
            assert downstream.transport.get_write_buffer_size() < 1 << 20
        # the client reads: all of it arrives, unchanged and in order
        got = await asyncio.wait_for(_read_response(reader), 30)
        assert got == (200, sse)
        assert upstream_done.is_set()
    finally:
        if writer is not None:
            writer.close()
        await gw.stop()


def _record_connections(client: UpstreamClient) -> list[_Conn]:
    """The client's upstream connections, as it opens them."""
    conns: list[_Conn] = []
    connect = client._connect

    async def recording() -> _Conn:
        conn = await connect()
        conns.append(conn)
        return conn

    client._connect = recording  # type: ignore[method-assign]
    return conns


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response off `reader`: its status and its body, de-chunked."""
    body: list[bytes] = []
    done = False

    class Parsed:
        def on_body(self, data: bytes) -> None:
            body.append(data)

        def on_message_complete(self) -> None:
            nonlocal done
            done = True

    parser = httptools.HttpResponseParser(Parsed())
    while not done:
        data = await reader.read(1 << 16)
        if not data:
            raise AssertionError("the gateway closed the connection mid-response")
        parser.feed_data(data)
    return parser.get_status_code(), b"".join(body)
