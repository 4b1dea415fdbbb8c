"""OTLP/HTTP trace ingest: decoding, GenAI span mapping, export responses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from slokit.errors import InputError
from slokit.events.otlp import (
    SpanRejection,
    decode_export_request,
    export_response,
    spans_to_records,
)
from slokit.events.validate import validate_records

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
START = 1_767_268_800_123_456_789  # 2026-01-01T12:00:00.123456789Z
MS = 1_000_000  # nanoseconds per millisecond
GOOD_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "llama-3-8b",
    "gen_ai.response.model": "llama-3-8b-instruct",
    "gen_ai.system": "vllm",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 51,
    "gen_ai.response.time_to_first_chunk": 0.25,
    "gen_ai.response.finish_reasons": ["stop"],
}
GOOD_RESOURCE: dict[str, Any] = {"service.name": "chat-api", "service.version": "v42"}
GOOD_RECORD: dict[str, Any] = {
    "event_id": "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174",
    "ts": datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    "service": "chat-api",
    "route": "chat",
    "model": "llama-3-8b-instruct",
    "tier": None,
    "tenant": None,
    "region": None,
    "deployment": "v42",
    "outcome": "ok",
    "http_status": None,
    "latency_ms": 1250.0,
    "ttft_ms": 250.0,
    "tpot_ms": 20.0,  # (1250 - 250) / (51 - 1)
    "itl_max_ms": None,
    "queue_ms": None,
    "input_tokens": 120,
    "output_tokens": 51,
    "cost_usd": None,
    "cold_start": None,
    "attributes": {"finish_reasons": "stop", "provider": "vllm"},
}


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=value)


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def make_span(attributes: dict[str, Any] | None = None, **fields: Any) -> Span:
    """The known-good GenAI span; `attributes` entries override (None removes one)."""
    merged = {**GOOD_ATTRIBUTES, **(attributes or {})}
    merged = {k: v for k, v in merged.items() if v is not None}
    defaults: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "name": "chat llama-3-8b",
        "kind": Span.SPAN_KIND_CLIENT,
        "start_time_unix_nano": START,
        "end_time_unix_nano": START + 1250 * MS,
    }
    return Span(attributes=key_values(merged), **{**defaults, **fields})


def make_request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    merged = {**GOOD_RESOURCE, **(resource or {})}
    merged = {k: v for k, v in merged.items() if v is not None}
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(merged)),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def mapped(span: Span, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    records, rejected = spans_to_records(make_request(span, resource=resource))
    assert rejected == []
    assert len(records) == 1
    return records[0]


def chunk_event(name: str, after_ms: int) -> Span.Event:
    return Span.Event(name=name, time_unix_nano=START + after_ms * MS)


def test_the_known_good_span_maps_to_the_full_record() -> None:
    assert mapped(make_span()) == GOOD_RECORD


@pytest.mark.parametrize(
    ("span", "resource", "expected"),
    [
        pytest.param(
            make_span({"gen_ai.response.model": None}),
            None,
            {"model": "llama-3-8b"},
            id="model falls back to the request model",
        ),
        pytest.param(
            make_span(
                {
                    "gen_ai.usage.input_tokens": None,
                    "gen_ai.usage.output_tokens": None,
                    "gen_ai.usage.prompt_tokens": 7,
                    "gen_ai.usage.completion_tokens": 11,
                }
            ),
            None,
            {"input_tokens": 7, "output_tokens": 11, "tpot_ms": 100.0},
            id="older prompt and completion token names are read",
        ),
        pytest.param(
            make_span({"gen_ai.usage.output_tokens": 51.0, "gen_ai.usage.input_tokens": "120"}),
            None,
            {"input_tokens": 120, "output_tokens": 51},
            id="whole doubles and numeric strings count as tokens",
        ),
        pytest.param(
            make_span(
                {"gen_ai.response.time_to_first_chunk": None},
                events=[chunk_event("gen_ai.content.chunk", 300)],
            ),
            None,
            {"ttft_ms": 300.0, "tpot_ms": 19.0},
            id="ttft comes from the first chunk event when the attribute is absent",
        ),
        pytest.param(
            make_span(
                {"gen_ai.response.time_to_first_chunk": None},
                events=[
                    chunk_event("gen_ai.choice", 450),
                    chunk_event("first_token", 250),
                    chunk_event("gen_ai.content.chunk", 600),
                ],
            ),
            None,
            {"ttft_ms": 250.0, "tpot_ms": 20.0},
            id="the earliest first chunk event wins",
        ),
        pytest.param(
            make_span(
                {"gen_ai.response.time_to_first_chunk": None},
                events=[chunk_event("gen_ai.client.inference.operation.details", 100)],
            ),
            None,
            {"ttft_ms": None, "tpot_ms": None},
            id="other events do not give a ttft",
        ),
        pytest.param(
            make_span(events=[chunk_event("gen_ai.content.chunk", 900)]),
            None,
            {"ttft_ms": 250.0},
            id="the ttft attribute wins over events",
        ),
        pytest.param(
            make_span({"gen_ai.usage.output_tokens": 1}),
            None,
            {"output_tokens": 1, "ttft_ms": 250.0, "tpot_ms": None},
            id="one output token has no tpot",
        ),
        pytest.param(
            make_span({"gen_ai.usage.output_tokens": None}),
            None,
            {"output_tokens": None, "tpot_ms": None},
            id="unknown output tokens have no tpot",
        ),
        pytest.param(
            make_span({"gen_ai.operation.name": "text_completion"}),
            None,
            {"route": "completion"},
            id="text_completion maps to route completion",
        ),
        pytest.param(
            make_span({"gen_ai.operation.name": "embeddings"}),
            None,
            {"route": "embedding"},
            id="embeddings maps to route embedding",
        ),
        pytest.param(
            make_span({"gen_ai.operation.name": "generate_content"}),
            None,
            {"route": "generate_content"},
            id="other operations keep their name as route",
        ),
        pytest.param(
            make_span({"slokit.route": "rag"}),
            None,
            {"route": "rag"},
            id="slokit.route overrides the operation",
        ),
        pytest.param(
            make_span({"slokit.tier": "premium", "slokit.tenant": "acme", "user.id": "u1"}),
            None,
            {"tier": "premium", "tenant": "acme"},
            id="tier and tenant come from slokit attributes",
        ),
        pytest.param(
            make_span({"user.id": "u1"}),
            None,
            {"tenant": "u1"},
            id="tenant falls back to user.id",
        ),
        pytest.param(
            make_span(),
            {"cloud.region": "eu-west-1"},
            {"region": "eu-west-1"},
            id="region comes from the resource",
        ),
        pytest.param(
            make_span({"cloud.region": "us-east-1"}),
            {"cloud.region": "eu-west-1"},
            {"region": "us-east-1"},
            id="a span region overrides the resource region",
        ),
        pytest.param(
            make_span(),
            {"service.name": None, "service.version": None},
            {"service": "unknown_service", "deployment": None},
            id="a resource without service.name maps to unknown_service",
        ),
        pytest.param(
            make_span(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.response.finish_reasons": ["stop", "length"],
                    "error.type": "_OTHER",
                }
            ),
            None,
            {
                "attributes": {
                    "finish_reasons": "stop,length",
                    "provider": "openai",
                    "error_type": "_OTHER",
                },
                "outcome": "error",
            },
            id="provider name wins over system and error.type is kept",
        ),
        pytest.param(
            make_span({"http.response.status_code": 200}),
            None,
            {"http_status": 200, "outcome": "ok"},
            id="http status 200 is kept and ok",
        ),
    ],
)
def test_one_changed_field_maps_to(
    span: Span, resource: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert mapped(span, resource) == {**GOOD_RECORD, **expected}


@pytest.mark.parametrize(
    ("span", "outcome"),
    [
        pytest.param(make_span(), "ok", id="an unset status is ok"),
        pytest.param(
            make_span(status=Status(code=Status.STATUS_CODE_ERROR)),
            "error",
            id="status ERROR is an error",
        ),
        pytest.param(make_span({"error.type": "_OTHER"}), "error", id="any error.type is an error"),
        pytest.param(make_span({"error.type": "timeout"}), "timeout", id="error.type timeout"),
        pytest.param(
            make_span(
                {"error.type": "openai.APITimeoutError"},
                status=Status(code=Status.STATUS_CODE_ERROR),
            ),
            "timeout",
            id="an error.type containing Timeout is a timeout",
        ),
        pytest.param(
            make_span(
                {"http.response.status_code": 429, "error.type": "429"},
                status=Status(code=Status.STATUS_CODE_ERROR),
            ),
            "rate_limited",
            id="http 429 is rate limited",
        ),
        pytest.param(
            make_span({"http.response.status_code": 400}),
            "client_error",
            id="http 400 is a client error",
        ),
        pytest.param(
            make_span({"http.response.status_code": 408}),
            "timeout",
            id="http 408 is a timeout as in validate",
        ),
        pytest.param(
            make_span({"http.response.status_code": 503}),
            "error",
            id="http 503 is an error",
        ),
        pytest.param(
            make_span({"gen_ai.response.finish_reasons": ["cancelled"]}),
            "cancelled",
            id="finish reason cancelled is cancelled",
        ),
        pytest.param(
            make_span(
                {"error.type": "asyncio.CancelledError"},
                status=Status(code=Status.STATUS_CODE_ERROR),
            ),
            "cancelled",
            id="a cancellation error type is cancelled",
        ),
        pytest.param(
            make_span(status=Status(code=Status.STATUS_CODE_OK)),
            "ok",
            id="status OK is ok",
        ),
    ],
)
def test_outcome(span: Span, outcome: str) -> None:
    assert mapped(span)["outcome"] == outcome


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"gen_ai.operation.name": "chat"}, id="operation name alone marks GenAI"),
        pytest.param({"gen_ai.request.model": "m"}, id="request model alone marks GenAI"),
        pytest.param({"gen_ai.system": "openai"}, id="system alone marks GenAI"),
        pytest.param({"gen_ai.provider.name": "openai"}, id="provider name alone marks GenAI"),
    ],
)
def test_a_span_is_genai_by_any_one_key(attributes: dict[str, Any]) -> None:
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        start_time_unix_nano=START,
        end_time_unix_nano=START + MS,
        attributes=key_values(attributes),
    )
    records, rejected = spans_to_records(make_request(span))
    assert (len(records), rejected) == (1, [])


def test_non_genai_spans_are_ignored_not_rejected() -> None:
    http_span = Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex("0000000000000001"),
        start_time_unix_nano=0,  # unmappable, yet not GenAI: still ignored
        attributes=key_values({"http.request.method": "POST", "http.response.status_code": 200}),
    )
    records, rejected = spans_to_records(make_request(http_span, make_span()))
    assert records == [GOOD_RECORD]
    assert rejected == []


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            make_span(end_time_unix_nano=START - 1),
            f"span ends before it starts (end {START - 1} < start {START} ns)",
            id="a span ending before its start is rejected",
        ),
        pytest.param(
            make_span(start_time_unix_nano=0),
            "start_time_unix_nano is 0",
            id="a span without start time is rejected",
        ),
        pytest.param(
            make_span({"gen_ai.response.time_to_first_chunk": 2.0}),
            "time to first chunk 2000.0 ms lies outside the span (0..1250.0 ms)",
            id="a ttft longer than the span is rejected",
        ),
    ],
)
def test_a_bad_span_is_rejected_and_the_good_one_kept(bad: Span, reason: str) -> None:
    bad.span_id = bytes.fromhex("00000000000000bb")
    records, rejected = spans_to_records(make_request(bad, make_span()))
    assert records == [GOOD_RECORD]
    assert rejected == [SpanRejection(TRACE_ID.hex(), "00000000000000bb", reason)]
    assert str(rejected[0]) == f"span {TRACE_ID.hex()}/00000000000000bb: {reason}"


def test_mapped_records_pass_validation_with_no_rejections() -> None:
    spans = [
        make_span(),
        make_span(
            {"gen_ai.response.time_to_first_chunk": None, "http.response.status_code": 429},
            span_id=bytes.fromhex("0000000000000002"),
        ),
        make_span(
            {"slokit.tier": "free", "gen_ai.usage.output_tokens": None},
            span_id=bytes.fromhex("0000000000000003"),
            status=Status(code=Status.STATUS_CODE_ERROR),
        ),
    ]
    records, _ = spans_to_records(make_request(*spans, resource={"cloud.region": "eu"}))
    validated = validate_records(records, "request")
    assert validated.rejected == []
    rows = validated.table.to_pylist()
    assert [r["outcome"] for r in rows] == ["ok", "rate_limited", "error"]
    assert rows[0]["ts"] == GOOD_RECORD["ts"]
    assert rows[0]["tpot_ms"] == 20.0
    assert rows[1]["http_status"] == 429
    assert dict(rows[0]["attributes"]) == {"finish_reasons": "stop", "provider": "vllm"}


def test_resending_a_span_gives_the_same_event_id() -> None:
    first, _ = spans_to_records(make_request(make_span()))
    again, _ = spans_to_records(make_request(make_span({"gen_ai.usage.output_tokens": 52})))
    assert first[0]["event_id"] == again[0]["event_id"] == GOOD_RECORD["event_id"]


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP JSON encoding: proto3 JSON, but trace and span ids as hex."""
    doc = json_format.MessageToDict(request)
    for resource_spans in doc["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def test_json_with_hex_ids_decodes_like_protobuf() -> None:
    request = make_request(
        make_span(parent_span_id=bytes.fromhex("00f067aa0ba902b7")),
        make_span(span_id=bytes.fromhex("0000000000000002")),
    )
    body = otlp_json(request)
    assert b'"traceId": "5b8efff798038103d269b633813fc60c"' in body
    from_json = decode_export_request(body, "application/json; charset=utf-8")
    from_protobuf = decode_export_request(request.SerializeToString(), "application/x-protobuf")
    assert from_json == from_protobuf == request
    assert spans_to_records(from_json) == spans_to_records(from_protobuf)


def test_handwritten_otlp_json_maps_hex_ids_into_the_event_id() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(START),
                                "endTimeUnixNano": str(START + 10 * MS),
                                "attributes": [
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                                    {
                                        "key": "gen_ai.usage.output_tokens",
                                        "value": {"intValue": "3"},
                                    },
                                ],
                                "unknownField": True,
                            }
                        ]
                    }
                ],
            }
        ]
    }
    request = decode_export_request(json.dumps(body).encode(), "application/json")
    [record], rejected = spans_to_records(request)
    assert rejected == []
    assert (record["event_id"], record["service"], record["model"], record["output_tokens"]) == (
        GOOD_RECORD["event_id"],
        "svc",
        "m",
        3,
    )
    assert record["latency_ms"] == 10.0


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        pytest.param(
            b"not a protobuf",
            "application/x-protobuf",
            "OTLP body is not a valid application/x-protobuf ExportTraceServiceRequest: ",
            id="a corrupt protobuf body names the protobuf encoding",
        ),
        pytest.param(
            b"{not json",
            "application/json",
            "OTLP body is not a valid application/json ExportTraceServiceRequest: ",
            id="a corrupt JSON body names the JSON encoding",
        ),
        pytest.param(
            b"[]",
            "application/json",
            "OTLP body is not a valid application/json ExportTraceServiceRequest: "
            "top level must be an object, got list",
            id="a JSON array body is refused",
        ),
        pytest.param(
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz!"}]}]}]}',
            "application/json",
            "OTLP body is not a valid application/json ExportTraceServiceRequest: ",
            id="an id that is neither hex nor base64 is refused",
        ),
        pytest.param(
            b"{}",
            "text/plain",
            "unsupported OTLP content type 'text/plain'; "
            "send application/x-protobuf or application/json",
            id="an unknown content type is refused",
        ),
    ],
)
def test_an_undecodable_body_raises_input_error(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        decode_export_request(body, content_type)
    assert str(info.value).startswith(message)


def test_export_response_reports_partial_success_in_protobuf() -> None:
    body, content_type = export_response(2, "2 spans rejected", "application/x-protobuf")
    assert content_type == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "2 spans rejected"


def test_export_response_reports_partial_success_in_json() -> None:
    body, content_type = export_response(1, "span x: bad", "Application/JSON; charset=utf-8")
    assert content_type == "application/json"
    assert json.loads(body) == {
        "partialSuccess": {"rejectedSpans": "1", "errorMessage": "span x: bad"}
    }


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", b"{}", id="full success in JSON is an empty object"),
        pytest.param("application/x-protobuf", b"", id="full success in protobuf is empty"),
    ],
)
def test_export_response_without_rejections_is_empty(content_type: str, body: bytes) -> None:
    assert export_response(0, "ignored", content_type) == (body, content_type)
