"""The gateway's parts on their own: the SSE meter, quality checks, config errors, the
event table, the upstream client against a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator

import orjson
import pyarrow as pa
import pytest
from aiohttp import web

from slokit.errors import SpecError
from slokit.events.schema import SCHEMAS
from slokit.gateway.checks import run_checks, wants_json
from slokit.gateway.client import Response, UpstreamClient, UpstreamError, UpstreamTimeout
from slokit.gateway.config import hash_key, loads_gateway
from slokit.gateway.http import Connection, Handler, Request, head
from slokit.gateway.proxy import _duration, _estimate_tokens
from slokit.gateway.sink import EventSink, arrow_stream, checks_table, to_table
from slokit.gateway.stream import StreamMeter, Usage, read_body

from conftest import aiohttp_app


def sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def delta(text: str, finish: str | None = None) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


USAGE = sse({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}})


def test_meter_times_content_chunks_and_hides_requested_usage() -> None:
    m = StreamMeter(hide_usage=True, keep_text=True)
    role = sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    assert m.feed(role, now=1.0) == role  # no content: not the first token
    assert m.first_token is None
    assert m.feed(delta("Hel"), now=1.5) == delta("Hel")
    # one network read holding two events and half of a third
    two = delta("lo") + delta(" you", "stop")
    half = USAGE[:10]
    assert m.feed(two + half, now=1.6) == two
    assert m.feed(USAGE[10:] + b"data: [DONE]\n\n", now=2.5) == b"data: [DONE]\n\n"
    assert m.first_token == 1.5 and m.chunks == 3 and m.done
    assert m.itl_max == pytest.approx(0.1)
    assert m.usage.input_tokens == 11 and m.usage.output_tokens == 3
    assert m.finish_reason == "stop" and m.text() == "Hello you"


def test_meter_passes_usage_the_client_asked_for_and_crlf_events() -> None:
    m = StreamMeter(hide_usage=False, keep_text=False)
    data = (delta("a") + USAGE + b"data: [DONE]\n\n").replace(b"\n", b"\r\n")
    assert m.feed(data, now=0.0) == data
    assert m.usage.output_tokens == 3 and m.text() is None
    # usage asked for: every chunk carries `"usage":null`, which reaches the client
    # only when it asked itself
    chunk = sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None})
    plain = sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
    assert StreamMeter(hide_usage=False, keep_text=False).feed(chunk, now=0.0) == chunk
    hidden = StreamMeter(hide_usage=True, keep_text=True)
    assert hidden.feed(chunk, now=0.0) == plain  # the quick way: one whole event
    assert hidden.feed(chunk[:9], now=0.1) == b""  # the general way: a split event
    assert hidden.feed(chunk[9:] + chunk, now=0.2) == plain + plain
    first = b'data: {"usage":null,"choices":[]}\n\n'
    assert StreamMeter(hide_usage=True, keep_text=False).feed(first) == b'data: {"choices":[]}\n\n'


USAGE_OBJ = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 6}}


def _pieces(nl: bytes) -> list[bytes]:
    """A stream as an upstream might send it, with `nl` line ends: every kind of event
    the meter reads or passes over, mostly one event a piece."""

    def event(*lines: bytes) -> bytes:
        return nl.join(lines) + nl + nl

    def data(obj: object) -> bytes:
        return b"data: " + orjson.dumps(obj)

    def say(text: str) -> bytes:
        return data({"choices": [{"index": 0, "delta": {"content": text}}]})

    two_lines = event(say("lo"), say("!"))  # one event
    cut = two_lines.index(nl) + 2 * len(nl)  # just after the first line's end
    usage = event(data(USAGE_OBJ))
    return [
        event(data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})),
        event(data({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]})),
        event(say("Hel")),
        two_lines[:cut],
        two_lines[cut:],
        event(b"id: 7", say(" you")),
        event(b": keep-alive"),
        event(b': ok {"choices":[{"delta":{"content":"not read"}}]}'),  # a comment
        event(data({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]})),
        event(b"data: oops"),
        event(b"data: [1]"),
        event(b'data:{"choices":[{"index":0,"text":" txt"}]}'),  # /v1/completions
        event(b'data: {"choices":[{"delta":{"content":"cr"}}],\r"x":1}'),  # a lone CR ends a line
        event(data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        usage,
        usage + nl + nl,  # and an empty event after it
        event(b"data: [DONE]"),
    ]


def _state(m: StreamMeter) -> tuple[object, ...]:
    u = m.usage
    return (
        (m.first_token, m.last_token, m.itl_max, m.chunks, m.finish_reason, m.done, m.text()),
        (u.input_tokens, u.output_tokens, u.cached_tokens),
    )


@pytest.mark.parametrize("nl", [pytest.param(b"\n", id="LF"), pytest.param(b"\r\n", id="CRLF")])
@pytest.mark.parametrize("hide_usage", [True, False], ids=["usage hidden", "usage passed"])
def test_meter_reads_a_piece_of_one_event_as_it_reads_events_split_across_pieces(
    nl: bytes, hide_usage: bool
) -> None:
    pieces = _pieces(nl)
    whole = StreamMeter(hide_usage, keep_text=True)  # as sent: mostly the quick way
    split = StreamMeter(hide_usage, keep_text=True)  # each piece's end in the next piece
    sent = []
    for i, piece in enumerate(pieces):
        now = 1.0 + 0.1 * i * i
        sent.append(whole.feed(piece, now))
        first = split.feed(piece[:-1], now)
        assert first + split.feed(piece[-1:], now) == sent[-1]
        assert _state(whole) == _state(split)
    stream = b"".join(pieces)
    usage = b"data: " + orjson.dumps(USAGE_OBJ) + nl + nl
    assert b"".join(sent) == (stream.replace(usage, b"") if hide_usage else stream)
    assert whole.text() == "hmmHello! you txt" and whole.usage.output_tokens == 6
    assert whole.finish_reason == "stop" and whole.done
    assert whole.rest() == split.rest() == b""


def test_meter_counts_tool_call_chunks_as_output_without_text() -> None:
    m = StreamMeter(hide_usage=False, keep_text=True)
    role = sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    m.feed(role, now=1.0)
    assert m.first_token is None  # an empty role chunk is not output
    for i, args in enumerate(['{"ci', 'ty": "Oslo"}']):
        call = {"index": 0, "function": {"arguments": args}}
        m.feed(sse({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}), now=2.0 + i)
    done = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    m.feed(done, now=4.0)
    assert (m.first_token, m.last_token, m.itl_max, m.chunks) == (2.0, 3.0, 1.0, 2)
    assert m.text() == "" and m.finish_reason == "tool_calls"


def test_meter_counts_reasoning_and_completions_text_as_content() -> None:
    m = StreamMeter(hide_usage=False, keep_text=True)
    think = sse({"choices": [{"index": 0, "delta": {"content": None, "reasoning_content": "so"}}]})
    assert m.feed(think, now=2.0) == think
    text = sse({"choices": [{"index": 0, "text": " yes", "finish_reason": "length"}]})
    assert m.feed(text, now=2.5) == text
    assert (m.first_token, m.last_token, m.itl_max, m.chunks) == (2.0, 2.5, 0.5, 2)
    assert m.text() == "so yes" and m.finish_reason == "length" and not m.done


def test_read_body_and_usage_details() -> None:
    usage = Usage()
    body = orjson.dumps(
        {
            "choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        }
    )
    assert read_body(body, usage) == ("length", "hi")
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (5, 7, 2)
    assert read_body(b"not json", Usage()) == (None, None)
    odd = Usage()  # values an event cannot hold are left out, not passed on
    body = orjson.dumps(
        {
            "choices": [{"message": {"content": "hi"}, "finish_reason": {"type": "stop"}}],
            "usage": {"prompt_tokens": True, "completion_tokens": 1 << 60},
        }
    )
    assert read_body(body, odd) == (None, "hi")
    assert (odd.input_tokens, odd.output_tokens) == (None, None)


def test_quality_checks() -> None:
    refusals = ("i can't help with that",)
    got = dict(run_checks('{"a": 1}', "stop", True, refusals))
    assert got == {"json_valid": True, "non_empty": True, "not_truncated": True, "no_refusal": True}
    got = dict(run_checks("{broken", "length", True, refusals))
    assert not got["json_valid"] and not got["not_truncated"]
    got = dict(run_checks("  ", "stop", False, refusals))
    assert "json_valid" not in got and not got["non_empty"]
    assert not dict(run_checks("Sorry, I can't help with that.", "stop", False, refusals))[
        "no_refusal"
    ]
    assert run_checks(None, None, False, refusals) == []
    assert wants_json({"response_format": {"type": "json_object"}})
    assert not wants_json({"response_format": {"type": "text"}})


def test_config_errors_name_line_and_field() -> None:
    text = f"""apiVersion: slokit/v1
kind: gateway
upstreams:
  - {{name: a, url: http://127.0.0.1:1}}
keys:
  - {{sha256: abc, tenant: t, tier: gold}}
  - {{sha256: {hash_key("k")}, tenant: u, tier: diamond}}
"""
    with pytest.raises(SpecError) as exc:
        loads_gateway(text, "gw.yaml")
    msg = str(exc.value)
    assert "gw.yaml:6" in msg and "keys[0].sha256" in msg and "hash-key" in msg
    text = text.replace("sha256: abc", f"sha256: {hash_key('j')}")
    with pytest.raises(SpecError) as exc:
        loads_gateway(text, "gw.yaml")
    assert "gw.yaml:7" in str(exc.value) and "unknown tier 'diamond'" in str(exc.value)
    with pytest.raises(SpecError, match="did you mean `upstreams`"):
        loads_gateway("upstream: []\n", "gw.yaml")
    cfg = loads_gateway(text.replace("diamond", "bronze"), "gw.yaml")
    assert cfg.anonymous is None  # keys configured: unknown keys are refused
    assert cfg.keys[hash_key("k")].tier == "bronze"


def test_rate_limit_helpers() -> None:
    assert _duration(0.02) == b"20ms" and _duration(1.2) == b"1s" and _duration(360) == b"6m0s"
    assert _estimate_tokens({"max_tokens": 100}, 400) == 200
    assert _estimate_tokens({}, 40) == 10 + 256


def test_event_table_and_json() -> None:
    rec = {
        "event_id": "gw-1",
        "ts": 1_700_000_000.25,
        "service": "llm",
        "route": "chat",
        "outcome": "ok",
        "http_status": 200,
        "latency_ms": 12.5,
        "attributes": {"upstream": "a"},
    }
    t = to_table([rec, {**rec, "event_id": "gw-2", "attributes": {}}], "request")
    assert t.schema == SCHEMAS["request"]
    assert t.column("ts")[0].as_py().timestamp() == 1_700_000_000.25
    assert t.column("attributes")[0].as_py() == [("upstream", "a")]
    assert t.column("attributes")[1].as_py() is None
    back = pa.ipc.open_stream(arrow_stream(t.slice(0, 1))).read_all()
    assert back.schema == SCHEMAS["request"]
    assert back.to_pylist() == t.slice(0, 1).to_pylist()


def test_checks_table_equals_score_records() -> None:
    """The compact form gives the very ScoreEvents the record form gives, answer by
    answer and check by check, whatever number of checks each answer had."""
    items = [
        ("gw-a-1", 1_700_000_000.5, "llm", [("non_empty", True), ("not_truncated", False)]),
        ("gw-a-2", 1_700_000_001.25, "chat", [("json_valid", False)]),
        ("gw-b-7", 1_700_000_002.0, "llm", [("non_empty", True), ("no_refusal", True)]),
    ]
    records = [
        {
            "event_id": f"{rid}:{name}",
            "ts": ts,
            "request_id": rid,
            "service": service,
            "name": name,
            "value": 1.0 if ok else 0.0,
            "passed": ok,
            "source": "check",
            "comment": None,
        }
        for rid, ts, service, results in items
        for name, ok in results
    ]
    table = checks_table(items)
    assert table.schema == SCHEMAS["score"]
    assert table.to_pylist() == to_table(records, "score").to_pylist()
    assert table.column("event_id").to_pylist()[:2] == ["gw-a-1:non_empty", "gw-a-1:not_truncated"]


def test_sink_add_checks_counts_each_check_and_delivers_scores() -> None:
    asyncio.run(_sink_checks())


async def _sink_checks() -> None:
    got: list[list[str]] = []

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        assert kind == "score"
        got.append(table.column("event_id").to_pylist())

    sink = EventSink(deliver, batch=100, interval_s=0.01, buffer=5)
    sink.add_checks("r1", 1_700_000_000.0, "llm", [("non_empty", True), ("no_refusal", True)])
    sink.add("score", {**_record(9), "name": "judge", "request_id": "r0"})
    sink.add_checks("r2", 1_700_000_001.0, "llm", [("non_empty", False), ("x", True)])
    assert sink.pending() == 5
    # a full buffer drops the whole answer's checks, and counts each one
    sink.add_checks("r3", 1_700_000_002.0, "llm", [("non_empty", True), ("x", True)])
    assert sink.dropped["score"] == 2 and sink.pending() == 5
    sink.add_checks("r4", 1_700_000_003.0, "llm", [])  # nothing to record
    assert sink.pending() == 5
    sink.start()
    await sink.close(timeout_s=5)
    ids = [i for batch in got for i in batch]
    assert sorted(ids) == ["e9", "r1:no_refusal", "r1:non_empty", "r2:non_empty", "r2:x"]
    assert sink.delivered["score"] == 5 and sink.pending() == 0


def test_sink_retries_then_delivers_and_counts_drops() -> None:
    asyncio.run(_sink_retries())


async def _sink_retries() -> None:
    got: list[tuple[str, list[str]]] = []
    fail = [True]

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        if fail[0]:
            fail[0] = False
            got.append((key, ["failed"]))
            raise RuntimeError("store away")
        got.append((key, table.column("event_id").to_pylist()))

    sink = EventSink(deliver, batch=2, interval_s=0.01, buffer=3, max_backoff_s=0.05)
    for i in range(4):
        sink.add("request", _record(i))
    assert sink.dropped["request"] == 1  # the buffer holds 3
    sink.start()
    await sink.close(timeout_s=5)
    assert [ids for _, ids in got] == [["failed"], ["e0", "e1"], ["e2"]] and sink.failures == 1
    # the retry carries the failed delivery's key; the next delivery a key of its own
    assert got[0][0] == got[1][0] != got[2][0]
    assert sink.delivered["request"] == 3 and sink.pending() == 0


def test_sink_retries_exactly_the_failed_delivery_under_its_key() -> None:
    asyncio.run(_sink_exact_retry())


async def _sink_exact_retry() -> None:
    got: list[tuple[str, list[str]]] = []
    sink: EventSink

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        got.append((key, table.column("event_id").to_pylist()))
        if len(got) == 1:  # events arrive while the failed delivery waits for its retry
            sink.add("request", _record(7))
            raise RuntimeError("answer lost")

    sink = EventSink(deliver, batch=10, interval_s=0.01, max_backoff_s=0.05)
    sink.add("request", _record(0))
    sink.add("request", _record(1))
    sink.start()
    await sink.close(timeout_s=5)
    # not the failed batch plus the new event: the same batch, then the new one apart
    assert [ids for _, ids in got] == [["e0", "e1"], ["e0", "e1"], ["e7"]]
    assert got[0][0] == got[1][0] and got[2][0] != got[0][0]
    assert sink.delivered["request"] == 3 and sink.pending() == 0


def _record(i: int) -> dict[str, object]:
    return {"event_id": f"e{i}", "ts": 1_700_000_000.0 + i, "service": "llm", "outcome": "ok"}


def test_sink_drops_only_the_records_that_cannot_be_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.run(_sink_salvage())
    assert "dropped 1 of 4 request events" in caplog.text and "event e2:" in caplog.text


async def _sink_salvage() -> None:
    got: list[str] = []

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        got.extend(table.column("event_id").to_pylist())

    sink = EventSink(deliver, interval_s=0.01, deliver_interval_s=0.01)
    sink.start()
    for i in range(4):
        rec = _record(i)
        if i == 2:
            rec["attributes"] = {"finish_reason": {"type": "stop"}}  # not a string
        sink.add("request", rec)
    await sink.close(timeout_s=5)
    assert got == ["e0", "e1", "e3"]
    assert sink.dropped["request"] == 1 and sink.delivered["request"] == 3


def test_sink_converts_every_round_but_delivers_in_bulk() -> None:
    asyncio.run(_sink_bulk())


async def _sink_bulk() -> None:
    got: list[int] = []

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        got.append(table.num_rows)

    sink = EventSink(deliver, batch=1000, interval_s=0.01, deliver_interval_s=60)
    sink.start()
    for i in range(50):  # over many conversion rounds
        sink.add("request", _record(i))
        await asyncio.sleep(0.004)
    await asyncio.sleep(0.05)
    assert got == [] and sink.pending() == 50
    assert len(sink._ready["request"]) > 1  # converted round by round, not delivered
    sink.deliver_interval_s = 0.0  # the delivery is due: one batch of everything
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [50]
    for i in range(50, 60):
        sink.add("request", _record(i))
    await sink.close(timeout_s=5)  # closing delivers at once
    assert got == [50, 10] and sink.delivered["request"] == 60


# -- the upstream client against a real server -------------------------------------------


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    """`/hits` answers how many requests each path has had."""
    hits: dict[str, int] = {}

    async def echo(req: web.Request) -> web.StreamResponse:
        body = await req.read()
        if req.path == "/hits":
            return web.json_response(hits)
        hits[req.path] = hits.get(req.path, 0) + 1
        if req.path == "/slow":
            await asyncio.sleep(1)
        if req.path == "/gzip":
            return web.Response(body=gzip.compress(body), headers={"content-encoding": "gzip"})
        if req.path == "/stream":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(req)
            for i in range(3):
                await resp.write(b"data: %d\n\n" % i)
            await resp.write_eof()
            return resp
        if req.path == "/slowbody":
            resp = web.StreamResponse()
            await resp.prepare(req)
            await resp.write(b"first")
            await asyncio.sleep(1)
            await resp.write(b"late")
            await resp.write_eof()
            return resp
        if req.path == "/die":
            assert req.transport is not None
            req.transport.abort()
        return web.json_response(
            {"body": body.decode(), "auth": req.headers.get("authorization"), "path": req.path_qs}
        )

    async with aiohttp_app(echo) as url:
        yield url


def test_client_keeps_alive_streams_and_passes_bytes() -> None:
    asyncio.run(_keeps_alive())


async def _keeps_alive() -> None:
    async with echo_server() as upstream:
        await _keeps_alive_on(upstream)


async def _keeps_alive_on(upstream: str) -> None:
    c = UpstreamClient(upstream)
    for i in range(3):
        r = await c.request(b"POST", b"/x?a=1", [(b"authorization", b"Bearer k")], b"%d" % i)
        assert r.status == 200
        assert orjson.loads(await r.read()) == {
            "body": str(i),
            "auth": "Bearer k",
            "path": "/x?a=1",
        }
        r.release()
    assert len(c._idle) == 1  # one connection, reused
    r = await c.request(b"POST", b"/stream", [], b"")
    parts = [p async for p in r.chunks()]
    assert b"".join(parts) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    r.release()
    r = await c.request(b"POST", b"/gzip", [], b"zipped")
    assert gzip.decompress(await r.read()) == b"zipped"  # passed through still encoded
    r.release()
    c.close()


def test_client_errors_say_whether_a_retry_is_safe() -> None:
    asyncio.run(_errors())


async def _errors() -> None:
    async with echo_server() as upstream:
        await _errors_on(upstream)


async def _errors_on(upstream: str) -> None:
    c = UpstreamClient(upstream, first_byte_timeout_s=0.2)
    with pytest.raises(UpstreamTimeout) as t:
        await c.request(b"POST", b"/slow", [], b"")
    assert t.value.before_first_byte
    with pytest.raises(UpstreamError) as e:
        await c.request(b"POST", b"/die", [], b"")
    assert e.value.before_first_byte
    assert not c._busy  # failed requests leave nothing for the deadline sweep to watch
    dead = UpstreamClient("http://127.0.0.1:9", connect_timeout_s=1)
    with pytest.raises(UpstreamError, match="cannot connect"):
        await dead.request(b"POST", b"/", [], b"")
    c.close()


async def read_all(r: Response) -> bytes:
    """The whole body, then the connection back to the pool."""
    data = await r.read()
    r.release()
    return data


def test_client_sends_a_request_once_even_on_a_reused_connection() -> None:
    asyncio.run(_sent_once())


async def _sent_once() -> None:
    async with echo_server() as upstream:
        c = UpstreamClient(upstream, first_byte_timeout_s=0.2)
        await read_all(await c.request(b"POST", b"/x", [], b"warm"))
        assert len(c._idle) == 1
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamTimeout):  # on the pooled connection
            await c.request(b"POST", b"/slow", [], b"")
        assert loop.time() - t0 < 0.5  # one first-byte timeout, not two
        await asyncio.sleep(1.1)  # the upstream's handler has finished by now
        r = await c.request(b"GET", b"/hits", [], b"")
        assert orjson.loads(await r.read())["/slow"] == 1  # a POST is never replayed
        r.release()
        c.close()


def test_client_closes_connections_idle_too_long_and_pools_at_most_max_idle() -> None:
    asyncio.run(_idle_limits())


async def _idle_limits() -> None:
    async with echo_server() as upstream:
        c = UpstreamClient(upstream, idle_s=0.2, max_idle=1)
        first = await c.request(b"POST", b"/x", [], b"1")
        conn = first._conn
        await read_all(first)
        again = await c.request(b"POST", b"/x", [], b"2")
        assert again._conn is conn  # idle for less than idle_s: reused
        await read_all(again)
        await asyncio.sleep(0.3)
        late = await c.request(b"POST", b"/x", [], b"3")
        assert late._conn is not conn and conn.closed  # idle too long: a new connection
        await read_all(late)
        both = [await c.request(b"POST", b"/x", [], b"%d" % i) for i in range(2)]
        for r in both:
            await read_all(r)
        assert len(c._idle) == 1  # the second connection was closed, not pooled
        c.close()


def test_client_total_timeout_ends_a_body_that_stalls_after_the_head() -> None:
    asyncio.run(_total_timeout())


async def _total_timeout() -> None:
    async with echo_server() as upstream:
        c = UpstreamClient(upstream, first_byte_timeout_s=5, total_timeout_s=0.3)
        assert c._tick_s == pytest.approx(0.015)  # a twentieth of the shortest timeout
        t0 = asyncio.get_running_loop().time()
        r = await c.request(b"POST", b"/slowbody", [], b"")
        assert r.status == 200  # the head came in time
        with pytest.raises(UpstreamTimeout) as t:
            await r.read()
        waited = asyncio.get_running_loop().time() - t0
        assert not t.value.before_first_byte  # bytes had arrived: not safe to retry
        assert 0.3 <= waited < 0.6  # the deadline, late by at most about a tick
        r.close()
        assert not c._busy
        await asyncio.sleep(0.05)
        assert c._sweeper is None  # nothing in flight: the sweep stops
        r = await c.request(b"POST", b"/x", [], b"ok")  # and starts again with a request
        assert c._sweeper is not None and c._busy
        assert orjson.loads(await r.read())["body"] == "ok"
        r.release()
        assert not c._busy
        c.close()
        assert c._sweeper is None


# -- the server side's connections -------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    live: set[Connection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(handler, 1 << 20, live), "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for conn in list(live):
            conn.abort()
        await server.wait_closed()


def test_connection_answers_pipelined_requests_in_order_and_a_failure_with_500() -> None:
    asyncio.run(_pipelined())


async def _pipelined() -> None:
    seen: list[bytes] = []

    async def handler(conn: Connection, req: Request) -> None:
        if req.path == b"/boom":
            raise RuntimeError("a bug in the handler")
        await asyncio.sleep(0.05 if req.path == b"/a" else 0)  # the first is the slowest
        seen.append(req.path)
        conn.write(head(200, [], len(req.path), req.keep_alive) + req.path)

    async with raw_server(handler) as port:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        got = await asyncio.wait_for(r.readuntil(b"/b"), 5)
        assert got.index(b"\r\n\r\n/a") < got.index(b"\r\n\r\n/b")
        assert seen == [b"/a", b"/b"]
        w.write(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\nGET /c HTTP/1.1\r\nhost: x\r\n\r\n")
        rest = await asyncio.wait_for(r.read(), 5)  # to the end: the connection closes
        assert rest.startswith(b"HTTP/1.1 500 ")
        assert b"internal gateway error" in rest and b"/c" not in rest
        w.close()
        r, w = await asyncio.open_connection("127.0.0.1", port)  # the server goes on
        w.write(b"GET /d HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await asyncio.wait_for(r.readuntil(b"/d"), 5)).startswith(b"HTTP/1.1 200 ")
        assert seen == [b"/a", b"/b", b"/d"]
        w.close()


def test_bytes_that_are_not_a_request_never_land_inside_an_answer() -> None:
    asyncio.run(_malformed())


async def _malformed() -> None:
    async def handler(conn: Connection, req: Request) -> None:
        await asyncio.sleep(0.1)
        conn.write(head(200, [], len(req.path), req.keep_alive) + req.path)
        if not req.keep_alive:
            conn.close()

    async with raw_server(handler) as port:
        for sent in (
            # garbage while /a is being answered
            [b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n", b"\x00\x01 not http\r\n\r\n"],
            # a request after one that asked to close the connection
            [b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n"],
        ):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            for part in sent:
                w.write(part)
                await asyncio.sleep(0.02)
            got = await asyncio.wait_for(r.read(), 5)  # to the end: the connection closes
            assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\n/a")
            assert got.count(b"HTTP/1.1") == 1, got
            w.close()
        r, w = await asyncio.open_connection("127.0.0.1", port)  # garbage on an idle one
        w.write(b"\x00\x01 not http\r\n\r\n")
        assert (await asyncio.wait_for(r.read(), 5)).startswith(b"HTTP/1.1 400 ")
        w.close()


def test_a_connection_is_busy_from_the_moment_a_request_has_arrived() -> None:
    asyncio.run(_busy())


async def _busy() -> None:
    # `Gateway.stop` closes the connections that are not busy
    async def handler(conn: Connection, req: Request) -> None:
        await asyncio.sleep(0.05)

    class Transport:
        def close(self) -> None:
            pass

    conn = Connection(handler, 1 << 20, set())
    conn.connection_made(Transport())  # type: ignore[arg-type]
    for path in (b"/first", b"/second"):  # a new task, then the idle task woken
        conn.data_received(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % path)
        assert conn.busy  # at once, before the connection's task has run
        await asyncio.sleep(0.15)
        assert not conn.busy
    conn.connection_lost(None)


def test_connection_cancels_the_request_in_hand_when_the_client_goes() -> None:
    asyncio.run(_client_goes())


async def _client_goes() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(conn: Connection, req: Request) -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with raw_server(handler) as port:
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), 5)
        w.close()
        await asyncio.wait_for(cancelled.wait(), 5)


# -- budget-aware protection ---------------------------------------------------------------


def test_protection_follows_the_burn_rate_of_the_tier() -> None:
    from slokit.gateway.admission import Admission
    from slokit.gateway.config import ProtectionV1
    from slokit.gateway.protection import Protector, burning

    rule = ProtectionV1(tier="platinum", slo="ttft", burn_rate_above=6, window="1h")
    hot = {"slo": "ttft", "group": {"tier": "platinum"}, "burn_rates": {"1h": 9.0}}
    other_tier = {"slo": "ttft", "group": {"tier": "bronze"}, "burn_rates": {"1h": 50.0}}
    ungrouped = {"slo": "ttft", "group": {}, "burn_rates": {"1h": 7.0}}
    assert burning(rule, [hot]) and burning(rule, [ungrouped])
    assert not burning(rule, [other_tier])
    assert not burning(rule, [{**hot, "burn_rates": {"1h": 6.0}}])  # above, not at
    assert not burning(rule, [{**hot, "slo": "other"}])

    statuses: list[list[dict[str, object]]] = [[hot], [other_tier]]
    admission = Admission(upstreams=("u",))

    async def fetch(slo: str) -> list[dict[str, object]]:
        assert slo == "ttft"
        return statuses.pop(0)

    async def run() -> tuple[dict[str, bool], bool, dict[str, bool], bool]:
        applied: dict[str, bool] = {}

        def apply(tier: str, on: bool) -> None:
            applied[tier] = on
            admission.protect(tier, on)

        p = Protector((rule,), fetch, apply)
        first = await p.check_once()
        on = admission.snapshot()["protected"]["platinum"]
        second = await p.check_once()
        off = admission.snapshot()["protected"]["platinum"]
        return first, on, second, off

    first, on, second, off = asyncio.run(run())
    assert first == {"platinum": True} and on
    assert second == {"platinum": False} and not off
