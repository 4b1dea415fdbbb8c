"""Arrow schemas of the three records slokit stores (DESIGN.md, data model).

`RequestEvent` is one inference request, `ScoreEvent` a quality signal about one
request, `Annotation` a deploy, incident, maintenance or config change. Optional
fields that are unknown are null, never 0.
"""

from __future__ import annotations

import pyarrow as pa

OUTCOMES: tuple[str, ...] = (
    "ok",
    "error",
    "timeout",
    "cancelled",
    "shed",
    "rate_limited",
    "client_error",
)
SCORE_SOURCES: tuple[str, ...] = ("judge", "human", "check", "feedback")
ANNOTATION_KINDS: tuple[str, ...] = ("deploy", "incident", "maintenance", "config")

TS = pa.timestamp("us", tz="UTC")
ATTRIBUTES = pa.map_(pa.string(), pa.string())

# Labels an SLO may filter or group on, besides `attributes.<key>`.
LABELS: tuple[str, ...] = ("service", "route", "model", "tier", "tenant", "region", "deployment")
LATENCY_FIELDS: tuple[str, ...] = ("latency_ms", "ttft_ms", "tpot_ms", "itl_max_ms", "queue_ms")

REQUEST_EVENT = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("route", pa.string()),
        pa.field("model", pa.string()),
        pa.field("tier", pa.string()),
        pa.field("tenant", pa.string()),
        pa.field("region", pa.string()),
        pa.field("deployment", pa.string()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("http_status", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("ttft_ms", pa.float64()),
        pa.field("tpot_ms", pa.float64()),
        pa.field("itl_max_ms", pa.float64()),
        pa.field("queue_ms", pa.float64()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("cost_usd", pa.float64()),
        pa.field("cold_start", pa.bool_()),
        pa.field("attributes", ATTRIBUTES),
    ]
)

SCORE_EVENT = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("service", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("passed", pa.bool_()),
        pa.field("source", pa.string()),
        pa.field("comment", pa.string()),
    ]
)

ANNOTATION = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("labels", ATTRIBUTES),
    ]
)

# The ingest API's binary body form (gateway workers' event batches; docs/api.md)
ARROW_STREAM = "application/vnd.apache.arrow.stream"

SCHEMAS: dict[str, pa.Schema] = {
    "request": REQUEST_EVENT,
    "score": SCORE_EVENT,
    "annotation": ANNOTATION,
}
