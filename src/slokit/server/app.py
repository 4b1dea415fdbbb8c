"""The slokit HTTP server: ingest API, OTLP/HTTP trace receiver, statuses, health and
metrics. It owns the store (the single writer of the DuckDB file).

Every error has one JSON shape: `{"error": {"status", "code", "message"}}`. A bad
request never takes the server down: handlers turn every failure into a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hmac
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slokit.alerting.engine import Alert
from slokit.errors import InputError, SlokitError
from slokit.events import otlp
from slokit.events.readers import read_ndjson_block
from slokit.events.schema import ARROW_STREAM
from slokit.events.validate import Rejection, Validated, validate, validate_records
from slokit.server.metrics import ServerMetrics
from slokit.server.writer import StoreWriter
from slokit.store.batch_keys import MAX_LENGTH as MAX_KEY_LENGTH
from slokit.store.batch_keys import key_problem
from slokit.store.duckdb_store import DuckDBStore

if TYPE_CHECKING:
    from slokit.alerting.service import AlertService

MAX_ERRORS = 1000  # per-record errors listed in one response; counts stay exact


@dataclass(frozen=True)
class ServerConfig:
    db: Path | str = "slokit.duckdb"
    spec: Path | str | None = None
    token: str | None = None
    max_body: int = 32 << 20
    alerts: bool = True  # run the alert evaluator (needs a spec)
    gateway: Any = None  # a GatewayConfig: run the inference gateway in this process


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return _json({"error": {"status": status, "code": code, "message": message}}, status)


class Server:
    def __init__(self, config: ServerConfig, store: DuckDBStore | None = None) -> None:
        self.config = config
        self.store = store or DuckDBStore(config.db)
        self.writer = StoreWriter(self.store)
        self.metrics = ServerMetrics()
        self.spec = None
        self.evaluator = None
        self._eval_lock = asyncio.Lock()
        if config.spec is not None:
            from slokit.engine import Evaluator
            from slokit.spec import load

            self.spec = load(config.spec)
            self.evaluator = Evaluator(self.spec, self.store)
        self.alerting: AlertService | None = None
        if self.spec is not None and self.evaluator is not None and config.alerts:
            from slokit.alerting.service import AlertService

            self.alerting = AlertService(self.spec, self.store, evaluator=self.evaluator)
        self._alert_task: asyncio.Task[None] | None = None
        self.gateway: Any = None
        self._protector: Any = None

    async def start(self) -> None:
        if self.alerting is not None:
            self._alert_task = asyncio.create_task(self.alerting.run(self._eval_lock))
        if self.config.gateway is not None:
            from slokit.gateway.runner import attach_to_server

            self.gateway, self._protector = await attach_to_server(self, self.config.gateway)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self._protector.stop()
            await self.gateway.stop()  # delivers its buffered events before the writer stops
        if self._alert_task is not None:
            self._alert_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alert_task

    # -- plumbing ----------------------------------------------------------------

    def _check_token(self, request: Request) -> None:
        if self.config.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.config.token.encode()
        ):  # bytes: compare_digest refuses non-ASCII str (a 500, not a 401)
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong bearer token; send `Authorization: Bearer <token>`",
            )

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(
                413,
                "body_too_large",
                f"request body is {int(length)} bytes; the limit is {limit} "
                "(split the batch, or raise --max-body)",
            )
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(
                    413,
                    "body_too_large",
                    f"request body exceeds the limit of {limit} bytes "
                    "(split the batch, or raise --max-body)",
                )
            parts.append(chunk)
        body = b"".join(parts)
        encoding = request.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            body = _decompress(body, encoding, limit)
        elif encoding not in ("", "identity"):
            raise ApiError(
                415,
                "unsupported_encoding",
                f"content-encoding {encoding!r} is not supported; use gzip or none",
            )
        return body

    # -- ingest ------------------------------------------------------------------

    async def ingest(self, request: Request, kind: str) -> Response:
        self._check_token(request)
        key = _idempotency_key(request)
        body = await self._body(request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(ARROW_STREAM):
            arrow = await asyncio.to_thread(_arrow_stream, body, kind)
            return await self._respond(kind, arrow.table, arrow.rejected, key)
        fast = await asyncio.to_thread(_fast_ndjson, body, content_type, kind)
        if fast is not None:
            return await self._respond(kind, fast.table, fast.rejected, key)
        records, pre, index_map = parse_records(body, content_type)
        return await self._store_records(records, pre, kind, index_map, key)

    async def _store_records(
        self,
        records: list[Any],
        pre: list[Rejection],
        kind: str,
        index_map: list[int] | None = None,
        key: str | None = None,
    ) -> Response:
        checked: Validated = await asyncio.to_thread(validate_records, records, kind)
        rejected = sorted(
            pre + [_remap(r, index_map) for r in checked.rejected], key=lambda r: r.index
        )
        return await self._respond(kind, checked.table, rejected, key)

    async def _respond(
        self, kind: str, table: pa.Table, rejected: list[Rejection], key: str | None = None
    ) -> Response:
        with self.metrics.write_seconds.time():
            result = await self.writer.append(kind, table, key)
        if result.replayed and result.received != table.num_rows:
            raise ApiError(
                409,
                "idempotency_key_reused",
                f"Idempotency-Key {key!r} was first sent with a batch of {result.received} "
                f"valid {kind} records, this one has {table.num_rows}: a retry must send "
                "the same batch; a new batch needs a new key",
            )
        if result.replayed:
            self.metrics.records.labels(kind, "replayed").inc(result.received)
        else:
            self.metrics.records.labels(kind, "accepted").inc(result.inserted)
            self.metrics.records.labels(kind, "duplicate").inc(result.duplicates)
        self.metrics.records.labels(kind, "rejected").inc(len(rejected))
        status = 400 if rejected and result.received == 0 else 200
        answer = {
            "accepted": result.inserted,
            "duplicates": result.duplicates,
            "rejected": len(rejected),
            "errors": [r.to_dict() for r in rejected[:MAX_ERRORS]],
        }
        if key is not None:
            answer["replayed"] = result.replayed
        return _json(answer, status)

    async def traces(self, request: Request) -> Response:
        self._check_token(request)
        body = await self._body(request)
        content_type = request.headers.get("content-type", otlp.PROTOBUF)
        try:
            export = otlp.decode_export_request(body, content_type)
        except InputError as exc:
            status = 415 if "content type" in str(exc) else 400
            raise ApiError(status, "bad_otlp", str(exc)) from exc
        records, span_rejections = otlp.spans_to_records(export)
        checked = await asyncio.to_thread(validate_records, records, "request")
        if checked.table.num_rows:
            with self.metrics.write_seconds.time():
                result = await self.writer.append("request", checked.table)
            self.metrics.records.labels("request", "accepted").inc(result.inserted)
            self.metrics.records.labels("request", "duplicate").inc(result.duplicates)
        rejected = len(span_rejections) + len(checked.rejected)
        self.metrics.records.labels("request", "rejected").inc(rejected)
        reasons = [str(r) for r in span_rejections] + [
            f"span {records[r.index]['event_id']}: {r.reason}" for r in checked.rejected
        ]
        payload, media = otlp.export_response(rejected, "; ".join(reasons[:20]), content_type)
        return Response(payload, media_type=media)

    # -- reads -------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        self._check_token(request)
        if self.evaluator is None:
            raise ApiError(404, "no_spec", "this server has no spec; start it with --spec FILE")
        at = _time_param(request.query_params.get("at"))
        timeline = request.query_params.get("timeline", "true") != "false"
        async with self._eval_lock:
            statuses = await asyncio.to_thread(
                self.evaluator.evaluate, at, request.query_params.get("slo")
            )
        return _json(
            {
                "at": at.isoformat().replace("+00:00", "Z"),
                "statuses": [s.to_dict(timeline=timeline) for s in statuses],
            }
        )

    def _require_spec(self) -> None:
        if self.evaluator is None or self.spec is None:
            raise ApiError(404, "no_spec", "this server has no spec; start it with --spec FILE")

    async def alerts(self, request: Request) -> Response:
        self._check_token(request)
        self._require_spec()
        limit = _int_param(request, "limit", 100)
        states = [Alert.from_row(r) for r in self.store.alert_states()]
        return _json(
            {
                "alerts": [a.to_dict() for a in states if a.active],
                "recent": self.store.alert_log(limit),
                "evaluations": self.alerting.ticks if self.alerting else 0,
            }
        )

    async def deliveries(self, request: Request) -> Response:
        self._check_token(request)
        return _json({"deliveries": self.store.deliveries(_int_param(request, "limit", 100))})

    async def gate(self, request: Request) -> Response:
        from slokit.alerting.gate import decide

        self._check_token(request)
        self._require_spec()
        assert self.spec is not None and self.evaluator is not None
        q = request.query_params
        at = _time_param(q.get("at"))
        service = q.get("service", self.spec.service)
        if service != self.spec.service:
            raise ApiError(
                404, "unknown_service", f"this server's spec is for {self.spec.service!r}"
            )
        async with self._eval_lock:
            statuses = await asyncio.to_thread(self.evaluator.evaluate, at)
        firing = [
            a
            for a in (Alert.from_row(r) for r in self.store.alert_states())
            if a.state.state == "firing"
        ]
        try:
            decision = decide(self.spec, statuses, firing, q.get("change", "feature"), at)
        except ValueError as exc:
            raise ApiError(400, "bad_change", str(exc)) from None
        return _json(decision.to_dict())

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok", "seq": self.store.seq()})

    async def metrics_endpoint(self, request: Request) -> Response:
        for kind in ("request", "score", "annotation"):
            self.metrics.stored.labels(kind).set(self.store.count(kind))
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def close(self) -> None:
        if self.alerting is not None:
            self.alerting.close()
        self.writer.close()
        self.store.close()


def _time_param(text: str | None) -> datetime:
    try:
        at = datetime.fromisoformat(text) if text else datetime.now(UTC)
    except ValueError:
        raise ApiError(400, "bad_time", f"`at` is not RFC 3339: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise ApiError(400, "bad_parameter", f"`{name}` must be a whole number, got {text!r}")
    return int(text)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate a gzip (every member of a multi-member stream) or deflate body, at most
    `limit` bytes of it."""
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        d = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
        try:
            part = d.decompress(rest, limit + 1 - size)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise ApiError(
                400, "bad_encoding", f"cannot decompress {encoding} body: {exc}"
            ) from exc
        size += len(part)
        out.append(part)
        if size > limit or d.unconsumed_tail:
            raise ApiError(
                413, "body_too_large", f"decompressed body exceeds the limit of {limit} bytes"
            )
        if not d.eof:  # a cut-off stream would otherwise store a prefix of the batch
            raise ApiError(
                400, "bad_encoding", f"cannot decompress {encoding} body: the stream is truncated"
            )
        rest = d.unused_data
        if encoding != "gzip" or not rest.strip(b"\0"):
            return b"".join(out)


def _idempotency_key(request: Request) -> str | None:
    """The batch's `Idempotency-Key` header (`slokit.store.batch_keys`), checked."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    problem = key_problem(key)
    if problem is not None:
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"the Idempotency-Key header is not usable: {problem}; send 1 to "
            f"{MAX_KEY_LENGTH} printable ASCII characters, the same for every retry of "
            "one batch",
        )
    return key


def _arrow_stream(body: bytes, kind: str) -> Validated:
    """An Arrow IPC stream (what gateway workers send): columns named as the event's
    fields, checked like a Parquet file's, each batch row numbered from 1."""
    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ApiError(
            400,
            "bad_arrow",
            f"the body is not an Arrow IPC stream ({exc}); send one written by "
            "pyarrow.ipc.new_stream, or JSON / NDJSON with another content type",
        ) from exc
    return validate(table, kind, lines=np.arange(1, table.num_rows + 1))


def _fast_ndjson(body: bytes, content_type: str, kind: str) -> Validated | None:
    """NDJSON through pyarrow's JSON reader (C++, no per-record Python): None when
    the body is not plain NDJSON that it reads, and the record-by-record path runs."""
    if body[:1] in (b"[", b"") or (
        "json" in content_type and "nd" not in content_type and b"\n" not in body.strip()
    ):
        return None
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    table = read_ndjson_block(body, n_lines, kind)
    if table is None:
        return None
    return validate(table, kind, lines=np.arange(1, n_lines + 1))


def _remap(r: Rejection, index_map: list[int] | None) -> Rejection:
    if index_map is None:
        return r
    position = index_map[r.index]
    return Rejection(position, position + 1, r.field, r.reason)


def parse_records(
    body: bytes, content_type: str
) -> tuple[list[Any], list[Rejection], list[int] | None]:
    """A JSON array, a single JSON object, or NDJSON (one object per line). Lines that
    are not JSON become rejections; the rest go on, with their positions in the body."""
    text = body.strip()
    if not text:
        raise ApiError(400, "empty_body", "the body is empty; send a JSON array or NDJSON")
    if "ndjson" not in content_type and "jsonl" not in content_type:
        # One JSON document first: a pretty-printed object spans lines but is no NDJSON.
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if text.startswith(b"[") or (text.startswith(b"{") and b"\n" not in text):
                raise ApiError(
                    400,
                    "bad_json",
                    f"body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                ) from None
        else:
            return (value if isinstance(value, list) else [value]), [], None
    records: list[Any] = []
    positions: list[int] = []
    pre: list[Rejection] = []
    # Split the body as sent, not stripped, so line numbers count leading blank lines.
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            records.append(orjson.loads(raw))
            positions.append(number - 1)
        except orjson.JSONDecodeError as exc:
            pre.append(Rejection(number - 1, number, None, f"not valid JSON ({exc.msg})"))
    return records, pre, positions


def create_app(config: ServerConfig, *, store: DuckDBStore | None = None) -> Starlette:
    server = Server(config, store)

    def route(path: str, name: str, handler: Any, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except ApiError as exc:
                response = error_response(exc.status, exc.code, exc.message)
            except SlokitError as exc:
                response = error_response(400, "invalid", str(exc))
            except Exception as exc:  # the server never dies on a request
                response = error_response(500, "internal", f"{type(exc).__name__}: {exc}")
            server.metrics.requests.labels(name, str(response.status_code)).inc()
            return response

        return Route(path, endpoint, methods=methods, name=name)

    routes = [
        route("/healthz", "healthz", server.healthz, ["GET"]),
        route("/metrics", "metrics", server.metrics_endpoint, ["GET"]),
        route("/v1/events", "events", lambda r: server.ingest(r, "request"), ["POST"]),
        route("/v1/scores", "scores", lambda r: server.ingest(r, "score"), ["POST"]),
        route("/v1/annotations", "annotations", lambda r: server.ingest(r, "annotation"), ["POST"]),
        route("/v1/traces", "traces", server.traces, ["POST"]),
        route("/v1/status", "status", server.status, ["GET"]),
        route("/v1/alerts", "alerts", server.alerts, ["GET"]),
        route("/v1/alerts/deliveries", "deliveries", server.deliveries, ["GET"]),
        route("/v1/gate", "gate", server.gate, ["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await server.start()
        yield
        await server.stop()
        server.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        # Unknown paths and wrong methods get the one error shape too, not plain text.
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(
            exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}"
        )
        response.headers.update(exc.headers or {})
        return response

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.server = server
    return app
