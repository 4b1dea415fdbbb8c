"""The HTTP API in process, through `httpx.ASGITransport`: ingest of events, scores and
annotations, the OTLP trace receiver, statuses, health and metrics, and the error shape
`{"error": {"status", "code", "message"}}` of every refusal."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from slokit.server.app import ServerConfig, create_app
from slokit.store.duckdb_store import DuckDBStore

from conftest import metric

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "content-type": "application/x-ndjson"}
JSON_TYPE = {"content-type": "application/json"}
GOOD_EVENT: dict[str, Any] = {
    "event_id": "req-0000",
    "ts": "2026-01-01T12:00:00Z",
    "service": "chat-api",
    "route": "chat",
    "model": "llama-3-8b",
    "outcome": "ok",
    "latency_ms": 850.0,
    "input_tokens": 120,
    "output_tokens": 51,
}
GOOD_SCORE: dict[str, Any] = {
    "event_id": "score-0000",
    "ts": "2026-01-01T12:00:05Z",
    "request_id": "req-0000",
    "service": "chat-api",
    "name": "judge.faithfulness",
    "value": 0.92,
    "passed": True,
    "source": "judge",
    "comment": "grounded in the retrieved passages",
}
GOOD_ANNOTATION: dict[str, Any] = {
    "event_id": "deploy-v43",
    "ts": "2026-01-01T11:30:00Z",
    "service": "chat-api",
    "kind": "deploy",
    "text": "vLLM 0.6.3, llama-3-8b v43",
    "labels": {"version": "v43"},
}
OUTCOMES = "ok, error, timeout, cancelled, shed, rate_limited, client_error"
UNAUTHORIZED = {
    "error": {
        "status": 401,
        "code": "unauthorized",
        "message": "missing or wrong bearer token; send `Authorization: Bearer <token>`",
    }
}
SPEC = """\
apiVersion: slokit/v1
service: chat-api
defaults:
  window: 1d
  min_events: 1
slos:
  - name: availability
    objective: 99
    sli: availability
"""


def event(number: int, **changes: Any) -> dict[str, Any]:
    """The good event with its own id and `changes` applied."""
    return {**GOOD_EVENT, "event_id": f"req-{number:04d}", **changes}


def without(record: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != field}


def ndjson(*lines: dict[str, Any] | str) -> bytes:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()


def error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}


def outcome(
    accepted: int, duplicates: int = 0, errors: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": len(errors),
        "errors": list(errors),
    }


async def chunked(data: bytes, size: int = 256) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Api:
    """A synchronous face over one in-process server; each call runs its own event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.store: DuckDBStore = app.state.server.store

    async def _send(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://slokit.test") as c:
            return list(await asyncio.gather(*(c.request(m, url, **kw) for m, url, kw in calls)))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send([(method, url, kwargs)]))[0]

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def burst(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
        """Send all `calls` concurrently."""
        return asyncio.run(self._send(calls))

    def event_ids(self) -> list[str]:
        table = self.store.query("SELECT event_id FROM request_events ORDER BY event_id")
        ids: list[str] = table.column("event_id").to_pylist()
        return ids


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start in-process servers on DuckDB files in `tmp_path`; close them afterwards
    (ASGITransport runs no lifespan, so the test closes what the lifespan would)."""
    started: list[Api] = []

    def start(**config: Any) -> Api:
        db = tmp_path / f"events-{len(started)}.duckdb"
        app = create_app(ServerConfig(db=db, **config), store=DuckDBStore(db))
        started.append(Api(app))
        return started[-1]

    yield start
    for api in started:
        api.app.state.server.close()


@pytest.fixture
def api(serve: Callable[..., Api]) -> Api:
    return serve(token=TOKEN)


# -- ingest of request events ------------------------------------------------------


def test_a_json_array_of_events_is_stored(api: Api) -> None:
    batch = [event(1), event(2, model="mistral-7b", output_tokens=7), event(3, outcome="error")]

    response = api.post("/v1/events", json=batch, headers=AUTH)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == outcome(accepted=3)
    assert api.store.count() == 3
    rows = api.store.query(
        "SELECT event_id, model, outcome, output_tokens FROM request_events ORDER BY event_id"
    ).to_pylist()
    assert rows == [
        {"event_id": "req-0001", "model": "llama-3-8b", "outcome": "ok", "output_tokens": 51},
        {"event_id": "req-0002", "model": "mistral-7b", "outcome": "ok", "output_tokens": 7},
        {"event_id": "req-0003", "model": "llama-3-8b", "outcome": "error", "output_tokens": 51},
    ]


@pytest.mark.parametrize(
    ("invalid", "field", "reason"),
    [
        pytest.param(without(event(3), "ts"), "ts", "missing `ts`", id="a record without ts"),
        pytest.param(
            event(3, latency_ms=-5),
            "latency_ms",
            "`latency_ms` is negative (-5.0); must be >= 0",
            id="a record with a negative latency_ms",
        ),
        pytest.param(
            event(3, outcome="exploded"),
            "outcome",
            f"unknown `outcome` value 'exploded'; valid: {OUTCOMES}",
            id="a record with an unknown outcome",
        ),
    ],
)
def test_ndjson_keeps_the_good_lines_and_names_each_bad_one(
    api: Api, invalid: dict[str, Any], field: str, reason: str
) -> None:
    body = ndjson(event(1), '{"event_id": "req-0002", oops', invalid, event(4))

    response = api.post("/v1/events", content=body, headers=NDJSON)

    assert response.status_code == 200
    assert response.json() == outcome(
        accepted=2,
        errors=(
            {
                "index": 1,
                "line": 2,
                "field": None,
                "reason": "not valid JSON (unexpected character, expected a string key)",
            },
            {"index": 2, "line": 3, "field": field, "reason": reason},
        ),
    )
    assert api.event_ids() == ["req-0001", "req-0004"]


@pytest.mark.parametrize(
    ("changes", "stored"),
    [
        pytest.param({}, ("2026-01-01 12:00:00+00:00", 200), id="the schema's own types"),
        pytest.param(
            {"ts": 1767268800, "http_status": "200"},
            ("2026-01-01 12:00:00+00:00", 200),
            id="epoch seconds and a quoted status",
        ),
        pytest.param(
            {"ts": "2026-01-01T13:00:00+01:00", "http_status": 200.0},
            ("2026-01-01 12:00:00+00:00", 200),
            id="an offset and a whole float",
        ),
    ],
)
def test_ndjson_values_in_other_forms_are_read_like_the_schema_s_own(
    api: Api, changes: dict[str, Any], stored: tuple[str, int]
) -> None:
    body = ndjson(event(1, http_status=200), event(2, **{"http_status": 200, **changes}))

    response = api.post("/v1/events", content=body, headers=NDJSON)

    assert response.json() == outcome(accepted=2)
    rows = api.store.query(
        "SELECT CAST(ts AT TIME ZONE 'UTC' AS VARCHAR) || '+00:00' AS ts, http_status "
        "FROM request_events ORDER BY event_id"
    ).to_pylist()
    assert [(r["ts"], r["http_status"]) for r in rows] == [stored, stored]


def test_ndjson_line_numbers_count_blank_lines_before_the_first_record(api: Api) -> None:
    body = b"\n\n" + ndjson(event(1), event(2, outcome="exploded")) + b"\n"

    response = api.post("/v1/events", content=body, headers=NDJSON)

    assert response.status_code == 200
    assert response.json()["errors"] == [
        {
            "index": 3,
            "line": 4,
            "field": "outcome",
            "reason": f"unknown `outcome` value 'exploded'; valid: {OUTCOMES}",
        }
    ]


def test_a_pretty_printed_json_object_is_one_record(api: Api) -> None:
    body = json.dumps(event(1), indent=2).encode()

    response = api.post("/v1/events", content=body, headers={**AUTH, **JSON_TYPE})

    assert response.status_code == 200
    assert response.json() == outcome(accepted=1)
    assert api.event_ids() == ["req-0001"]


@pytest.mark.parametrize(
    ("body", "headers", "errors"),
    [
        pytest.param(
            ndjson("<html>", without(event(2), "ts")),
            NDJSON,
            (
                {
                    "index": 0,
                    "line": 1,
                    "field": None,
                    "reason": "not valid JSON (unexpected character, expected a JSON value)",
                },
                {"index": 1, "line": 2, "field": "ts", "reason": "missing `ts`"},
            ),
            id="ndjson: errors carry line numbers",
        ),
        pytest.param(
            json.dumps(["<html>", without(event(2), "ts")]).encode(),
            {**AUTH, **JSON_TYPE},
            (
                {
                    "index": 0,
                    "line": None,
                    "field": None,
                    "reason": "expected a JSON object, got str",
                },
                {"index": 1, "line": None, "field": "ts", "reason": "missing `ts`"},
            ),
            id="json array: errors carry indexes only",
        ),
    ],
)
def test_a_batch_with_no_good_record_is_400_with_the_same_body(
    api: Api, body: bytes, headers: dict[str, str], errors: tuple[dict[str, Any], ...]
) -> None:
    response = api.post("/v1/events", content=body, headers=headers)

    assert response.status_code == 400
    assert response.json() == outcome(accepted=0, errors=errors)
    assert api.store.count() == 0


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([event(n) for n in range(5)], id="events with ids dedupe by event_id"),
        pytest.param(
            [without(event(n, latency_ms=100.0 + n), "event_id") for n in range(5)],
            id="events without ids dedupe by content",
        ),
    ],
)
def test_posting_the_same_batch_twice_stores_it_once(api: Api, batch: list[Any]) -> None:
    first = api.post("/v1/events", json=batch, headers=AUTH)
    second = api.post("/v1/events", json=batch, headers=AUTH)

    assert (first.status_code, first.json()) == (200, outcome(accepted=5))
    assert (second.status_code, second.json()) == (200, outcome(accepted=0, duplicates=5))
    assert api.store.count() == 5


def test_a_batch_resent_under_its_idempotency_key_gets_the_first_answer(api: Api) -> None:
    keyed = {**AUTH, "idempotency-key": "gw-1-7"}
    batch = [event(1), event(2, latency_ms=-5.0), event(3)]
    first = api.post("/v1/events", json=batch, headers=keyed)
    again = api.post("/v1/events", json=batch, headers=keyed)

    bad = {"index": 1, "line": None, "field": "latency_ms", "reason": NEGATIVE_LATENCY}
    answer = {**outcome(accepted=2, errors=(bad,)), "replayed": False}
    assert (first.status_code, first.json()) == (200, answer)
    assert (again.status_code, again.json()) == (200, {**answer, "replayed": True})
    assert api.event_ids() == ["req-0001", "req-0003"]
    text = api.get("/metrics").text
    assert metric(text, "slokit_ingest_records_total", kind="request", result="replayed") == 2

    # another batch under a used key: refused, nothing stored
    other = api.post("/v1/events", json=[event(4)], headers=keyed)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "first sent with a batch of 2 valid request records, this one has 1" in other.text
    assert api.event_ids() == ["req-0001", "req-0003"]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "it is empty"),
        ("k" * 256, "it is 256 characters long; the most is 255"),
        ("caf\u00e9", "characters other than printable ASCII"),
    ],
)
def test_an_unusable_idempotency_key_is_400(api: Api, key: str, problem: str) -> None:
    headers = {**AUTH, "idempotency-key": key.encode("latin-1")}
    response = api.post("/v1/events", json=[event(1)], headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_idempotency_key"
    assert problem in response.json()["error"]["message"]
    assert api.store.count() == 0


# -- bodies: size limit and encodings ------------------------------------------------

LIMIT = 1024


def test_a_body_over_the_limit_with_content_length_is_413(serve: Callable[..., Api]) -> None:
    api = serve(max_body=LIMIT)
    body = ndjson(*(event(n) for n in range(20)))

    response = api.post("/v1/events", content=body)

    assert len(body) > LIMIT
    assert response.request.headers["content-length"] == str(len(body))
    assert response.status_code == 413
    assert response.json() == error(
        413,
        "body_too_large",
        f"request body is {len(body)} bytes; the limit is {LIMIT} "
        "(split the batch, or raise --max-body)",
    )
    assert api.store.count() == 0


def test_a_streamed_body_over_the_limit_is_413(serve: Callable[..., Api]) -> None:
    api = serve(max_body=LIMIT)

    response = api.post("/v1/events", content=chunked(ndjson(*(event(n) for n in range(20)))))

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json() == error(
        413,
        "body_too_large",
        f"request body exceeds the limit of {LIMIT} bytes (split the batch, or raise --max-body)",
    )
    assert api.store.count() == 0


def test_a_streamed_body_under_the_limit_is_accepted(serve: Callable[..., Api]) -> None:
    api = serve(max_body=LIMIT)

    response = api.post("/v1/events", content=chunked(ndjson(event(1), event(2)), size=64))

    assert (response.status_code, response.json()) == (200, outcome(accepted=2))


def test_a_gzip_body_is_accepted(serve: Callable[..., Api]) -> None:
    api = serve(max_body=LIMIT)
    body = gzip.compress(json.dumps([event(n) for n in range(3)]).encode())

    response = api.post("/v1/events", content=body, headers={"content-encoding": "gzip"})

    assert (response.status_code, response.json()) == (200, outcome(accepted=3))
    assert api.event_ids() == ["req-0000", "req-0001", "req-0002"]


def test_a_gzip_body_over_the_limit_once_decompressed_is_413(serve: Callable[..., Api]) -> None:
    api = serve(max_body=LIMIT)
    plain = json.dumps([event(n) for n in range(10)]).encode()
    body = gzip.compress(plain)

    response = api.post("/v1/events", content=body, headers={"content-encoding": "gzip"})

    assert len(plain) > LIMIT > len(body)
    assert response.status_code == 413
    assert response.json() == error(
        413, "body_too_large", f"decompressed body exceeds the limit of {LIMIT} bytes"
    )
    assert api.store.count() == 0


GZIPPED = gzip.compress(ndjson(*(event(n) for n in range(5))))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b"plain text, not gzip",
            "cannot decompress gzip body: "
            "Error -3 while decompressing data: incorrect header check",
            id="bytes that are not gzip are 400",
        ),
        pytest.param(
            GZIPPED[: len(GZIPPED) // 2],
            "cannot decompress gzip body: the stream is truncated",
            id="a truncated gzip stream is 400 and stores no prefix",
        ),
    ],
)
def test_an_undecodable_gzip_body_is_400(api: Api, body: bytes, message: str) -> None:
    response = api.post("/v1/events", content=body, headers={**AUTH, "content-encoding": "gzip"})

    assert response.status_code == 400
    assert response.json() == error(400, "bad_encoding", message)
    assert api.store.count() == 0


# -- bearer token ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no authorization header"),
        pytest.param({"authorization": "Bearer not-the-token"}, id="a wrong token"),
        pytest.param({"authorization": f"Basic {TOKEN}"}, id="the token under another scheme"),
        pytest.param({"authorization": "Bearer"}, id="the scheme without a token"),
        pytest.param({"authorization": b"Bearer t\xe9st"}, id="a token with non-ASCII bytes"),
    ],
)
def test_writes_without_the_right_token_are_401(api: Api, headers: dict[str, Any]) -> None:
    response = api.post("/v1/events", json=[event(1)], headers=headers)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert api.store.count() == 0


def test_the_right_token_is_200(api: Api) -> None:
    response = api.post("/v1/events", json=[event(1)], headers=AUTH)

    assert (response.status_code, response.json()) == (200, outcome(accepted=1))


def test_healthz_and_metrics_need_no_token(api: Api) -> None:
    health = api.get("/healthz")
    metrics = api.get("/metrics")

    assert (health.status_code, health.json()) == (200, {"status": "ok", "seq": 0})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")


# -- scores and annotations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "record", "query", "stored"),
    [
        pytest.param(
            "/v1/scores",
            "score",
            GOOD_SCORE,
            "SELECT event_id, request_id, name, value, passed, source FROM score_events",
            {
                "event_id": "score-0000",
                "request_id": "req-0000",
                "name": "judge.faithfulness",
                "value": 0.92,
                "passed": True,
                "source": "judge",
            },
            id="a judge score",
        ),
        pytest.param(
            "/v1/annotations",
            "annotation",
            GOOD_ANNOTATION,
            "SELECT event_id, kind, text, labels FROM annotations",
            {
                "event_id": "deploy-v43",
                "kind": "deploy",
                "text": "vLLM 0.6.3, llama-3-8b v43",
                "labels": [("version", "v43")],
            },
            id="a deploy annotation",
        ),
    ],
)
def test_scores_and_annotations_are_stored_by_kind(
    api: Api, path: str, kind: str, record: dict[str, Any], query: str, stored: dict[str, Any]
) -> None:
    response = api.post(path, json=[record], headers=AUTH)

    assert (response.status_code, response.json()) == (200, outcome(accepted=1))
    assert (api.store.count(kind), api.store.count("request")) == (1, 0)
    assert api.store.query(query).to_pylist() == [stored]


@pytest.mark.parametrize(
    ("path", "record", "field", "reason"),
    [
        pytest.param(
            "/v1/scores",
            {**GOOD_SCORE, "source": "robot"},
            "source",
            "unknown `source` value 'robot'; valid: judge, human, check, feedback",
            id="a score from an unknown source",
        ),
        pytest.param(
            "/v1/scores",
            without(GOOD_SCORE, "name"),
            "name",
            "missing `name`",
            id="a score without a name",
        ),
        pytest.param(
            "/v1/annotations",
            {**GOOD_ANNOTATION, "kind": "party"},
            "kind",
            "unknown `kind` value 'party'; valid: deploy, incident, maintenance, config",
            id="an annotation of an unknown kind",
        ),
    ],
)
def test_invalid_scores_and_annotations_are_rejected(
    api: Api, path: str, record: dict[str, Any], field: str, reason: str
) -> None:
    response = api.post(path, json=[record], headers=AUTH)

    assert response.status_code == 400
    assert response.json() == outcome(
        accepted=0, errors=({"index": 0, "line": None, "field": field, "reason": reason},)
    )


# -- Arrow IPC bodies (gateway workers) --------------------------------------------------

ARROW = {**AUTH, "content-type": "application/vnd.apache.arrow.stream"}
NEGATIVE_LATENCY = "`latency_ms` is negative (-5.0); must be >= 0"
UNKNOWN_MEH = f"unknown `outcome` value 'meh'; valid: {OUTCOMES}"


def arrow_body(rows: list[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pylist(rows)
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table)
    return bytes(out.getvalue())


def test_an_arrow_stream_keeps_its_good_rows_and_numbers_each_bad_one(api: Api) -> None:
    rows = [event(1), event(2, latency_ms=-5.0), event(3, outcome="meh"), event(4)]

    response = api.post("/v1/events", content=arrow_body(rows), headers=ARROW)

    assert response.status_code == 200
    assert response.json() == outcome(
        accepted=2,
        errors=(
            {"index": 1, "line": 2, "field": "latency_ms", "reason": NEGATIVE_LATENCY},
            {"index": 2, "line": 3, "field": "outcome", "reason": UNKNOWN_MEH},
        ),
    )
    assert api.event_ids() == ["req-0001", "req-0004"]
    again = api.post("/v1/events", content=arrow_body(rows[:1]), headers=ARROW)
    assert again.json()["duplicates"] == 1


def test_gateway_scores_arrive_as_an_arrow_stream(api: Api) -> None:
    from slokit.gateway.sink import arrow_stream, to_table

    score = {**GOOD_SCORE, "ts": 1_767_268_805.0, "source": "check", "comment": None}
    body = arrow_stream(to_table([score, {**score, "event_id": "score-0001"}], "score"))

    response = api.post("/v1/scores", content=body, headers=ARROW)

    assert (response.status_code, response.json()) == (200, outcome(accepted=2))
    stored = api.store.query("SELECT event_id, name, passed FROM score_events ORDER BY 1")
    assert stored.to_pylist() == [
        {"event_id": "score-0000", "name": "judge.faithfulness", "passed": True},
        {"event_id": "score-0001", "name": "judge.faithfulness", "passed": True},
    ]


def test_a_body_that_is_no_arrow_stream_is_400_and_the_server_keeps_serving(api: Api) -> None:
    response = api.post("/v1/events", content=b'{"not": "arrow"}', headers=ARROW)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_arrow"
    assert "not an Arrow IPC stream" in response.json()["error"]["message"]
    ok = api.post("/v1/events", content=arrow_body([event(7)]), headers=ARROW)
    assert (ok.status_code, api.event_ids()) == (200, ["req-0007"])


# -- OTLP traces -------------------------------------------------------------------------

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
START = 1_767_268_800_000_000_000  # 2026-01-01T12:00:00Z in ns


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _genai_span(span_id: str, end: int) -> Span:
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "llama-3-8b",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 51,
    }
    return Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex(span_id),
        name="chat llama-3-8b",
        start_time_unix_nano=START,
        end_time_unix_nano=end,
        attributes=[_kv(k, v) for k, v in attributes.items()],
    )


EXPORT = ExportTraceServiceRequest(
    resource_spans=[
        ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "chat-api")]),
            scope_spans=[
                ScopeSpans(
                    spans=[
                        _genai_span("eee19b7ec3c1b174", end=START + 1_250_000_000),
                        _genai_span("eee19b7ec3c1b175", end=START - 1),  # ends before it starts
                    ]
                )
            ],
        )
    ]
)
SPAN_REJECTION = (
    "span 5b8efff798038103d269b633813fc60c/eee19b7ec3c1b175: span ends before it starts "
    f"(end {START - 1} < start {START} ns)"
)


def _otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP JSON encoding: proto3 JSON, but trace and span ids in hex."""
    doc = json_format.MessageToDict(request)
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def _protobuf_response(content: bytes) -> Any:
    response = ExportTraceServiceResponse.FromString(content)
    return {
        "rejected_spans": response.partial_success.rejected_spans,
        "error_message": response.partial_success.error_message,
    }


def _json_response(content: bytes) -> Any:
    partial = json.loads(content)["partialSuccess"]
    return {
        "rejected_spans": int(partial["rejectedSpans"]),
        "error_message": partial["errorMessage"],
    }


@pytest.mark.parametrize(
    ("content_type", "body", "decode"),
    [
        pytest.param(
            "application/x-protobuf",
            EXPORT.SerializeToString(),
            _protobuf_response,
            id="protobuf encoding",
        ),
        pytest.param("application/json", _otlp_json(EXPORT), _json_response, id="json encoding"),
    ],
)
def test_otlp_traces_store_good_genai_spans_and_count_bad_ones(
    api: Api, content_type: str, body: bytes, decode: Callable[[bytes], Any]
) -> None:
    response = api.post("/v1/traces", content=body, headers={**AUTH, "content-type": content_type})

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert decode(response.content) == {"rejected_spans": 1, "error_message": SPAN_REJECTION}
    rows = api.store.query(
        "SELECT event_id, service, route, model, outcome, latency_ms, input_tokens, "
        "output_tokens, strftime(ts, '%Y-%m-%dT%H:%M:%S') AS ts FROM request_events"
    ).to_pylist()
    assert rows == [
        {
            "event_id": "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174",
            "service": "chat-api",
            "route": "chat",
            "model": "llama-3-8b",
            "outcome": "ok",
            "latency_ms": 1250.0,
            "input_tokens": 120,
            "output_tokens": 51,
            "ts": "2026-01-01T12:00:00",
        }
    ]


# -- /metrics ----------------------------------------------------------------------------


def test_metrics_count_records_by_result_and_requests_by_route(api: Api) -> None:
    api.post("/v1/events", json=[event(1), event(2), event(3)], headers=AUTH)
    api.post("/v1/events", content=ndjson(event(3), event(4, latency_ms=-1)), headers=NDJSON)
    api.post("/v1/events", json=[event(5)])  # no token

    response = api.get("/metrics")

    text = response.text
    records = "slokit_ingest_records_total"
    assert metric(text, records, kind="request", result="accepted") == 3
    assert metric(text, records, kind="request", result="duplicate") == 1
    assert metric(text, records, kind="request", result="rejected") == 1
    requests = "slokit_http_requests_total"
    assert metric(text, requests, route="events", code="200") == 2
    assert metric(text, requests, route="events", code="401") == 1
    assert metric(text, "slokit_store_events", kind="request") == 3
    assert metric(text, "slokit_store_write_seconds_count") == 2


# -- /v1/status --------------------------------------------------------------------------


def test_status_without_a_spec_is_404(api: Api) -> None:
    response = api.get("/v1/status", headers=AUTH)

    assert response.status_code == 404
    assert response.json() == error(
        404, "no_spec", "this server has no spec; start it with --spec FILE"
    )


@pytest.fixture
def with_spec(serve: Callable[..., Api], tmp_path: Path) -> Api:
    spec = tmp_path / "chat-api.yaml"
    spec.write_text(SPEC)
    return serve(token=TOKEN, spec=spec)


def test_status_counts_the_posted_events_in_the_window_at_a_given_time(with_spec: Api) -> None:
    batch = [
        event(1, ts="2026-01-01T12:00:00Z"),
        event(2, ts="2026-01-01T12:01:00Z"),
        event(3, ts="2026-01-01T12:02:00Z"),
        event(4, ts="2026-01-01T12:03:00Z", outcome="error"),  # bad
        event(5, ts="2026-01-01T12:04:00Z", outcome="client_error"),  # not valid
        event(6, ts="2025-12-29T12:00:00Z", outcome="error"),  # before the 1d window
        event(7, ts="2026-01-01T14:00:00Z", outcome="error"),  # after `at`
        event(8, ts="2026-01-01T12:05:00Z", service="other-api", outcome="error"),
    ]
    posted = with_spec.post("/v1/events", json=batch, headers=AUTH)

    response = with_spec.get(
        "/v1/status", params={"at": "2026-01-01T13:00:00Z", "timeline": "false"}, headers=AUTH
    )

    assert (posted.status_code, posted.json()) == (200, outcome(accepted=8))
    assert response.status_code == 200
    body = response.json()
    assert body["at"] == "2026-01-01T13:00:00Z"
    keys = ("service", "slo", "group", "window", "good", "valid", "sli", "objective", "data")
    assert [{k: s[k] for k in keys} for s in body["statuses"]] == [
        {
            "service": "chat-api",
            "slo": "availability",
            "group": {},
            "window": {
                "start": "2025-12-31T13:00:00Z",
                "end": "2026-01-01T13:00:00Z",
                "spec": "1d",
            },
            "good": 3.0,
            "valid": 4.0,
            "sli": 75.0,
            "objective": 99.0,
            "data": {"no_data": False, "too_few_events": False},
        }
    ]
    assert "timeline" not in body["statuses"][0]


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        pytest.param(
            {"at": "yesterday"},
            400,
            "bad_time",
            "`at` is not RFC 3339: 'yesterday'",
            id="an `at` that is not a time is 400",
        ),
        pytest.param(
            {"slo": "latency"},
            400,
            "invalid",
            "no SLO named 'latency' in the spec; SLOs: availability",
            id="an unknown slo is 400",
        ),
    ],
)
def test_status_refuses_bad_parameters(
    with_spec: Api, params: dict[str, str], status: int, code: str, message: str
) -> None:
    response = with_spec.get("/v1/status", params=params, headers=AUTH)

    assert (response.status_code, response.json()) == (status, error(status, code, message))


def test_status_needs_the_token(with_spec: Api) -> None:
    response = with_spec.get("/v1/status")

    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


# -- malformed requests ------------------------------------------------------------------

MALFORMED: list[Any] = [
    pytest.param(
        ("POST", "/v1/events", {"content": b"  \n ", "headers": AUTH}),
        error(400, "empty_body", "the body is empty; send a JSON array or NDJSON"),
        id="an empty body",
    ),
    pytest.param(
        ("POST", "/v1/events", {"content": b'[{"ts": 1},', "headers": AUTH}),
        error(
            400,
            "bad_json",
            "body is not valid JSON (unexpected end of data at line 1, column 12)",
        ),
        id="a cut-off JSON array",
    ),
    pytest.param(
        ("POST", "/v1/events", {"content": b"{}", "headers": {**AUTH, "content-encoding": "br"}}),
        error(
            415, "unsupported_encoding", "content-encoding 'br' is not supported; use gzip or none"
        ),
        id="an unsupported content encoding",
    ),
    pytest.param(
        (
            "POST",
            "/v1/traces",
            {"content": b"\xff\xff", "headers": {**AUTH, "content-type": "application/x-protobuf"}},
        ),
        error(
            400,
            "bad_otlp",
            "OTLP body is not a valid application/x-protobuf ExportTraceServiceRequest: "
            "Error parsing message with type "
            "'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest': "
            "Wire format was corrupt",
        ),
        id="a corrupt OTLP protobuf",
    ),
    pytest.param(
        (
            "POST",
            "/v1/traces",
            {"content": b"x", "headers": {**AUTH, "content-type": "text/plain"}},
        ),
        error(
            415,
            "bad_otlp",
            "unsupported OTLP content type 'text/plain'; "
            "send application/x-protobuf or application/json",
        ),
        id="OTLP in an unsupported content type",
    ),
    pytest.param(
        ("GET", "/v1/nowhere", {"headers": AUTH}),
        error(404, "not_found", "GET /v1/nowhere: Not Found"),
        id="an unknown path",
    ),
    pytest.param(
        ("GET", "/v1/events", {"headers": AUTH}),
        error(405, "method_not_allowed", "GET /v1/events: Method Not Allowed"),
        id="a GET on an ingest route",
    ),
]


@pytest.mark.parametrize(("call", "expected"), MALFORMED)
def test_malformed_requests_get_the_error_shape(
    api: Api, call: tuple[str, str, dict[str, Any]], expected: dict[str, Any]
) -> None:
    method, path, kwargs = call

    response = api.request(method, path, **kwargs)

    assert response.status_code == expected["error"]["status"]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


def test_the_server_keeps_serving_after_a_burst_of_malformed_requests(api: Api) -> None:
    calls = [p.values[0] for p in MALFORMED] * 10
    expected = [p.values[1]["error"]["status"] for p in MALFORMED] * 10

    burst = api.burst(calls)
    response = api.post("/v1/events", json=[event(1)], headers=AUTH)

    assert [r.status_code for r in burst] == expected
    assert (response.status_code, response.json()) == (200, outcome(accepted=1))
    assert api.get("/healthz").json() == {"status": "ok", "seq": 1}


def test_a_multi_member_gzip_body_is_read_whole(tmp_path: Path) -> None:
    """Concatenated gzip members (what `cat a.gz b.gz` gives) are one body."""
    app = create_app(ServerConfig(db=tmp_path / "g.duckdb"))
    lines = [
        json.dumps({"ts": f"2026-01-01T12:00:0{i}Z", "service": "s", "outcome": "ok"})
        for i in range(4)
    ]
    body = gzip.compress(("\n".join(lines[:2]) + "\n").encode()) + gzip.compress(
        "\n".join(lines[2:]).encode()
    )

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            return await client.post(
                "/v1/events",
                content=body,
                headers={"content-encoding": "gzip", "content-type": "application/x-ndjson"},
            )

    try:
        response = asyncio.run(post())
    finally:
        app.state.server.close()
    assert response.status_code == 200
    assert response.json()["accepted"] == 4
