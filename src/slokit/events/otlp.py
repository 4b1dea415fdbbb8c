"""OTLP/HTTP trace ingest: decode export requests, map GenAI spans to RequestEvents.

The server owns HTTP (gzip, status codes); these functions own the payload. Spans that
follow the OpenTelemetry GenAI semantic conventions become `RequestEvent` dicts for
`validate_records(records, "request")`; other spans are ignored. A GenAI span that
cannot be mapped comes back as a `SpanRejection`, counted in the OTLP partial success.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from slokit.errors import InputError
from slokit.events.schema import REQUEST_EVENT

__all__ = [
    "JSON",
    "PROTOBUF",
    "SpanRejection",
    "decode_export_request",
    "export_response",
    "spans_to_records",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = {PROTOBUF, "application/protobuf"}
# OTLP JSON writes ids as hex, where proto3 JSON expects base64 (OTLP spec, JSON encoding).
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_GENAI_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.system",
    "gen_ai.provider.name",
)
_ROUTES = {"chat": "chat", "text_completion": "completion", "embeddings": "embedding"}
_FIRST_CHUNK_EVENTS = {"gen_ai.content.chunk", "gen_ai.choice", "first_token"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SpanRejection:
    """A GenAI span that could not become a RequestEvent, and why."""

    trace_id: str  # lowercase hex
    span_id: str  # lowercase hex
    reason: str

    def __str__(self) -> str:
        return f"span {self.trace_id}/{self.span_id}: {self.reason}"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode_export_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an (already decompressed) OTLP/HTTP trace export body.

    `content_type` selects binary protobuf (`application/x-protobuf`) or OTLP JSON
    (`application/json`, hex trace and span ids). Raises `InputError` otherwise.
    """
    media = _media_type(content_type)
    request = ExportTraceServiceRequest()
    if media in _PROTOBUF_TYPES:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InputError(
                f"OTLP body is not a valid {PROTOBUF} ExportTraceServiceRequest: {exc}"
            ) from exc
        return request
    if media == JSON:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError(f"top level must be an object, got {type(doc).__name__}")
            json_format.ParseDict(_hex_ids_to_base64(doc), request, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as exc:
            raise InputError(
                f"OTLP body is not a valid {JSON} ExportTraceServiceRequest: {exc}"
            ) from exc
        return request
    raise InputError(f"unsupported OTLP content type {content_type!r}; send {PROTOBUF} or {JSON}")


def _hex_ids_to_base64(node: Any) -> Any:
    """Copy of an OTLP JSON document with hex id strings rewritten as base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        is_id = key in _ID_KEYS and isinstance(value, str)
        out[key] = _hex_to_base64(value) if is_id else _hex_ids_to_base64(value)
    return out


def _hex_to_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        return value  # not hex: json_format accepts it as base64 or refuses it


def export_response(rejected: int, message: str, content_type: str) -> tuple[bytes, str]:
    """Encode the OTLP export response (partial success when `rejected` > 0).

    The encoding follows the request's `content_type`; returns (body, content type).
    """
    response = ExportTraceServiceResponse()
    if rejected > 0:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if _media_type(content_type) == JSON:
        doc = json_format.MessageToDict(response)
        return json.dumps(doc, separators=(",", ":")).encode(), JSON
    return response.SerializeToString(), PROTOBUF


def spans_to_records(
    request: ExportTraceServiceRequest,
) -> tuple[list[dict[str, Any]], list[SpanRejection]]:
    """Map every GenAI span of `request` to a RequestEvent dict; ignore other spans."""
    records: list[dict[str, Any]] = []
    rejected: list[SpanRejection] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = _attributes(span.attributes)
                if not any(key in attrs for key in _GENAI_KEYS):
                    continue
                result = _span_record(span, attrs, resource)
                if isinstance(result, str):
                    rejected.append(SpanRejection(span.trace_id.hex(), span.span_id.hex(), result))
                else:
                    records.append(result)
    return records, rejected


def _span_record(
    span: Span, attrs: dict[str, Any], resource: dict[str, Any]
) -> dict[str, Any] | str:
    """One span as a RequestEvent dict, or the reason it cannot be one."""
    if not span.trace_id or not span.span_id:
        return "missing trace_id or span_id"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0:
        return "start_time_unix_nano is 0"
    if end < start:
        return f"span ends before it starts (end {end} < start {start} ns)"
    latency_ms = (end - start) / 1e6
    labels = {**resource, **attrs}  # span attributes override resource attributes

    output_tokens = _int(
        attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens"))
    )
    ttft_ms = _ttft_ms(span, attrs)
    tpot_ms = None
    if ttft_ms is not None:
        if ttft_ms < 0 or ttft_ms > latency_ms:
            return f"time to first chunk {ttft_ms} ms lies outside the span (0..{latency_ms} ms)"
        if output_tokens is not None and output_tokens > 1:
            # vLLM: TPOT = (e2e latency - TTFT) / (output tokens - 1)
            tpot_ms = (latency_ms - ttft_ms) / (output_tokens - 1)

    operation = _text(attrs.get("gen_ai.operation.name"))
    route = _text(attrs.get("slokit.route")) or (
        _ROUTES.get(operation, operation) if operation else None
    )
    status = _int(attrs.get("http.response.status_code"))
    http_status = status if status is not None and 100 <= status <= 599 else None
    finish_reasons = _strings(attrs.get("gen_ai.response.finish_reasons"))
    error_type = _text(attrs.get("error.type"))
    provider = _text(attrs.get("gen_ai.provider.name")) or _text(attrs.get("gen_ai.system"))
    extra = {
        key: value
        for key, value in (
            ("finish_reasons", ",".join(finish_reasons) if finish_reasons else None),
            ("provider", provider),
            ("error_type", error_type),
        )
        if value
    }

    record: dict[str, Any] = dict.fromkeys(REQUEST_EVENT.names)
    record.update(
        event_id=f"{span.trace_id.hex()}-{span.span_id.hex()}",
        ts=_EPOCH + timedelta(microseconds=start // 1000),
        service=_text(resource.get("service.name")) or "unknown_service",
        route=route,
        model=_text(attrs.get("gen_ai.response.model")) or _text(attrs.get("gen_ai.request.model")),
        tier=_text(labels.get("slokit.tier")),
        tenant=_text(labels.get("slokit.tenant")) or _text(labels.get("user.id")),
        region=_text(labels.get("cloud.region")),
        deployment=_text(resource.get("service.version")),
        outcome=_outcome(span.status.code, http_status, error_type, finish_reasons),
        http_status=http_status,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms,
        input_tokens=_int(
            attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
        ),
        output_tokens=output_tokens,
        attributes=extra or None,
    )
    return record


def _ttft_ms(span: Span, attrs: dict[str, Any]) -> float | None:
    """Time to first chunk: the semconv attribute (seconds), else the first chunk event."""
    seconds = _number(attrs.get("gen_ai.response.time_to_first_chunk"))
    if seconds is not None:
        return seconds * 1000.0
    times = [
        e.time_unix_nano for e in span.events if e.name in _FIRST_CHUNK_EVENTS and e.time_unix_nano
    ]
    if not times:
        return None
    return float(min(times) - span.start_time_unix_nano) / 1e6


def _outcome(
    status_code: int, http_status: int | None, error_type: str | None, finish: list[str]
) -> str:
    """RequestEvent outcome; HTTP statuses map as in `validate._derive_outcome`."""
    kind = (error_type or "").lower()
    if http_status == 429:
        return "rate_limited"
    if http_status in (408, 504) or "timeout" in kind:
        return "timeout"
    if http_status is not None and 400 <= http_status < 500:
        return "client_error"
    if any(reason.lower() in ("cancelled", "canceled") for reason in finish) or "cancel" in kind:
        return "cancelled"
    failed = status_code == Status.STATUS_CODE_ERROR or error_type or (http_status or 0) >= 500
    return "error" if failed else "ok"


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_strings(value)) or None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [text for item in items if (text := _text(item)) is not None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None
