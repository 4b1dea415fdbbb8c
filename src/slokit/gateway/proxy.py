"""The gateway: an OpenAI-compatible proxy that measures every request, admits by tier
and sheds load to protect objectives.

Per request: identify the caller (API key -> tenant and tier), check its rate limits,
wait for admission (priority queue in front of an adaptive concurrency limit per
upstream; shed when the wait would break the tier's objective), forward to an upstream
with aiohttp (retrying once on another upstream when the attempt fails before the first
byte), relay the answer with its bytes unchanged, and record one RequestEvent (plus
ScoreEvents from the cheap quality checks) into the event sink, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from slokit.gateway.admission import Shed
from slokit.gateway.checks import run_checks, wants_json
from slokit.gateway.client import Response, UpstreamClient, UpstreamError, UpstreamTimeout
from slokit.gateway.config import GatewayConfig, Identity, hash_key
from slokit.gateway.errors import JSON, error_response, retry_after
from slokit.gateway.http import Connection, Request, head
from slokit.gateway.metrics import GatewayMetrics
from slokit.gateway.sink import EventSink
from slokit.gateway.stream import StreamMeter, Usage, read_body
from slokit.gateway.upstreams import UpstreamPool
from slokit.httpwire import LAST_CHUNK, chunk

log = logging.getLogger("slokit.gateway")

ROUTES = {
    b"/v1/chat/completions": "chat",
    b"/v1/completions": "completion",
    b"/v1/embeddings": "embedding",
}
# never forwarded either way: hop-by-hop headers and what the gateway recomputes
_HOP_REQ = frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"expect",
    }
)
_HOP_RESP = frozenset(
    {b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"}
)
_RETRYABLE_STATUS = frozenset({502, 503})
_LAG_PERIOD_S = 0.05  # the event-loop lag probe's period
_LAG_ALPHA = 0.2  # and the weight of one probe in its average


class _Direct:
    """The permit when admission is off: no queue, round-robin over healthy upstreams."""

    __slots__ = ("candidates", "queue_ms", "tier", "upstream")

    def __init__(self, upstream: str, tier: str, candidates: tuple[str, ...]) -> None:
        self.upstream = upstream
        self.tier = tier
        self.candidates = candidates  # the upstreams serving the request's model
        self.queue_ms = 0.0

    def observe(self, rtt_s: float) -> None:
        """Nothing to teach: without admission there is no limiter."""

    def release(self, rtt_s: float, ok: bool) -> None:
        """Nothing to give back: without admission there is no limiter to teach."""


class _Flight:
    """The permit a request holds (a retry swaps it) and when its answer's head came."""

    __slots__ = ("head_s", "permit", "sent")

    def __init__(self, permit: Any) -> None:
        self.permit = permit
        self.sent = 0.0  # perf_counter() when the request went upstream
        # the limiter's RTT: request sent -> first content chunk for a stream (the
        # response head of a stream comes at once, before any queueing shows), -> the
        # response head otherwise
        self.head_s: float | None = None


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        sink: EventSink,
        *,
        prices: Any = None,
        admission: Any = None,
        ratelimiter: Any = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.prices = prices
        self.admission = admission
        self.ratelimiter = ratelimiter
        self.metrics = metrics or GatewayMetrics()
        self.pool = UpstreamPool(
            config.upstreams,
            config.health_check,
            on_change=(lambda name, up: admission.mark_down(name, not up)) if admission else None,
        )
        self.clients: dict[str, UpstreamClient] = {}
        self.upstream_keys = {
            u.name: b"Bearer " + u.api_key.encode() for u in config.upstreams if u.api_key
        }
        self.session: aiohttp.ClientSession | None = None
        self.server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self._rr = itertools.count()
        self._ids: dict[bytes, Identity | None] = {}
        self._tiers = {t.name: t for t in config.tiers}
        self._refusals = tuple(p.lower() for p in config.quality.refusal_phrases)
        self._prefix = f"gw-{os.urandom(4).hex()}-"
        self._seq = itertools.count()
        # every request's record starts as a copy of this (a copy and six stores
        # measured 0.9 us against 2.0 us for the 20-key literal)
        self._template: dict[str, Any] = {
            "event_id": None,
            "ts": None,
            "service": config.service,
            "route": None,
            "model": None,
            "tier": None,
            "tenant": None,
            "region": config.region,
            "deployment": config.deployment,
            "outcome": "ok",
            "http_status": 200,
            "latency_ms": None,
            "ttft_ms": None,
            "tpot_ms": None,
            "itl_max_ms": None,
            "queue_ms": None,
            "input_tokens": None,
            "output_tokens": None,
            "cost_usd": None,
            "attributes": None,
        }
        self.metrics.add_state(self.snapshot)
        self.protected: dict[str, bool] = {}
        # how late the event loop runs its callbacks (EWMA): latency the gateway adds
        # itself when short of CPU, taken off the RTT the limiter learns from
        self.loop_lag_s = 0.0
        self._lag_task: asyncio.Task[None] | None = None
        self._limited: dict[str, int] = {}  # 429s the gateway's own limits answered, by tier

    # -- life cycle --------------------------------------------------------------------

    async def start(self, *, reuse_port: bool = False, sock: Any = None) -> None:
        loop = asyncio.get_running_loop()
        t = self.config.timeouts
        self.clients = {
            u.name: UpstreamClient(u.url, t.connect_s, t.first_byte_s, t.total_s, idle_s=t.idle_s)
            for u in self.config.upstreams
        }
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        await self.pool.probe_all(self.session)
        self.pool.start(self.session)
        self.sink.start()
        if self.admission is not None:
            self._lag_task = loop.create_task(self._watch_loop_lag())
        max_body, live = self.config.max_body, self.connections
        if sock is not None:
            self.server = await loop.create_server(
                lambda: Connection(self.handle, max_body, live), sock=sock, backlog=4096
            )
        else:
            self.server = await loop.create_server(
                lambda: Connection(self.handle, max_body, live),
                self.config.host,
                self.config.port,
                reuse_port=reuse_port or None,
                backlog=4096,
            )

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace_s`), close every
        connection, deliver the buffered events."""
        if self.server is not None:
            self.server.close()
        end = time.monotonic() + grace_s
        while any(c.busy for c in self.connections) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort() if conn.busy else conn.close()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        await self.pool.stop()
        await self.sink.close()
        if self.session is not None:
            await self.session.close()
        for client in self.clients.values():
            client.close()

    def _upstream_rtt(self, rtt_s: float) -> float:
        """The RTT the limiter learns from: the gateway's own delay (its event loop's
        lag) is not the upstream's queueing; taken off, by at most three quarters."""
        rest = rtt_s - self.loop_lag_s
        return rest if rest > 0.25 * rtt_s else 0.25 * rtt_s

    async def _watch_loop_lag(self) -> None:
        """Every `_LAG_PERIOD_S`, how much later than asked a timer fired."""
        clock = time.perf_counter
        while True:
            t = clock()
            await asyncio.sleep(_LAG_PERIOD_S)
            lag = clock() - t - _LAG_PERIOD_S
            self.loop_lag_s += ((lag if lag > 0.0 else 0.0) - self.loop_lag_s) * _LAG_ALPHA

    def snapshot(self) -> dict[str, Any]:
        s: dict[str, Any] = self.admission.snapshot() if self.admission is not None else {}
        s["loop_lag_ms"] = self.loop_lag_s * 1000.0
        ups = s.setdefault("upstreams", {})
        for name, ok in self.pool.healthy.items():
            ups.setdefault(name, {})["healthy"] = ok
        s["dropped"] = dict(self.sink.dropped)
        s["delivered"] = dict(self.sink.delivered)
        s.setdefault("protected", dict(self.protected))
        if self.ratelimiter is not None:
            s["rate_limited"] = dict(self._limited)
        return s

    # -- requests ----------------------------------------------------------------------

    async def handle(self, conn: Connection, req: Request) -> None:
        route = ROUTES.get(req.path)
        if route is None:
            self._other(conn, req)
            return
        if req.method != b"POST":
            conn.write(
                error_response(405, f"use POST for {req.path.decode()}", None, None, req.keep_alive)
            )
            if not req.keep_alive:
                conn.close()
            return
        await self._proxy(conn, req, route)

    def _other(self, conn: Connection, req: Request) -> None:
        path = req.path
        if path == b"/v1/models" and req.method == b"GET":
            if self._identify(req) is None:
                conn.write(_unauthorized())
                return
            body = orjson.dumps(self.pool.model_list())
            conn.write(head(200, [JSON], len(body), req.keep_alive) + body)
        elif path == b"/healthz":
            up = sum(self.pool.healthy.values())
            body = orjson.dumps({"status": "ok" if up else "degraded", "healthy_upstreams": up})
            conn.write(head(200 if up else 503, [JSON], len(body), req.keep_alive) + body)
        elif path == b"/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            body = generate_latest(self.metrics.registry)
            ctype = (b"content-type", CONTENT_TYPE_LATEST.encode())
            conn.write(head(200, [ctype], len(body), req.keep_alive) + body)
        else:
            conn.write(error_response(404, f"no route {path.decode(errors='replace')}", None))
        if not req.keep_alive:
            conn.close()

    def _identify(self, req: Request) -> Identity | None:
        raw = req.headers.get(b"authorization", b"")
        if raw in self._ids:
            return self._ids[raw]
        who = self.config.anonymous
        if raw[:7].lower() == b"bearer ":
            found = self.config.keys.get(hash_key(raw[7:].strip().decode("latin-1")))
            if found is not None:
                who = found
        if len(self._ids) < 10_000:
            self._ids[raw] = who
        return who

    def _record(
        self, rec: dict[str, Any], latency_s: float, ttft_s: float | None, tpot_s: float | None
    ) -> None:
        self.sink.add("request", rec)
        self.metrics.observe(
            rec["model"] or "",
            rec["tier"] or "",
            rec["outcome"],
            latency_s,
            ttft_s,
            tpot_s,
            rec["input_tokens"],
            rec["output_tokens"],
        )

    def _base(self, req: Request, route: str, who: Identity | None) -> dict[str, Any]:
        rec = self._template.copy()
        rec["event_id"] = f"{self._prefix}{next(self._seq)}"
        rec["ts"] = req.wall
        rec["route"] = route
        if who is not None:
            rec["tier"], rec["tenant"] = who.tier, who.tenant
        rec["attributes"] = {}
        return rec

    def _refuse(
        self,
        conn: Connection,
        req: Request,
        rec: dict[str, Any],
        status: int,
        outcome: str,
        message: str,
        code: str | None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        conn.write(error_response(status, message, code, headers, req.keep_alive))
        if not req.keep_alive:
            conn.close()
        self._unanswered(rec, req, outcome, status)

    def _unanswered(self, rec: dict[str, Any], req: Request, outcome: str, status: int) -> None:
        """Record a request that never reached an upstream (refused, or left while
        queued)."""
        rec["outcome"], rec["http_status"] = outcome, status
        latency = time.perf_counter() - req.t0
        rec["latency_ms"] = latency * 1000.0
        self._record(rec, latency, None, None)

    async def _proxy(self, conn: Connection, req: Request, route: str) -> None:
        who = self._identify(req)
        rec = self._base(req, route, who)
        if who is None:
            self._refuse(
                conn,
                req,
                rec,
                401,
                "client_error",
                "Incorrect API key provided.",
                "invalid_api_key",
            )
            return
        if req.too_large:
            self._refuse(
                conn,
                req,
                rec,
                413,
                "client_error",
                f"request body over the gateway's limit of {self.config.max_body} bytes",
                "request_too_large",
            )
            return
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            self._refuse(
                conn,
                req,
                rec,
                400,
                "client_error",
                f"the request body is not valid JSON: {exc}",
                "invalid_json",
            )
            return
        if not isinstance(body, dict):
            self._refuse(
                conn,
                req,
                rec,
                400,
                "client_error",
                "the request body must be a JSON object",
                "invalid_json",
            )
            return
        model = body.get("model")
        model = model if isinstance(model, str) else None
        rec["model"] = model
        stream = body.get("stream") is True and route != "embedding"
        rec["attributes"]["stream"] = "true" if stream else "false"

        limit_headers: list[tuple[bytes, bytes]] = []
        est_tokens = 0
        if self.ratelimiter is not None:
            est_tokens = _estimate_tokens(body, len(req.body))
            decision = self.ratelimiter.check(who.tenant, time.monotonic(), est_tokens)
            if decision is not None:
                limit_headers = _ratelimit_headers(decision)
                if not decision.allowed:
                    self._limited[who.tier] = self._limited.get(who.tier, 0) + 1
                    rec["attributes"]["limited_by"] = "gateway"
                    self._refuse(
                        conn,
                        req,
                        rec,
                        429,
                        "rate_limited",
                        f"Rate limit reached for tenant {who.tenant}; retry after "
                        f"{decision.retry_after_s:.1f} s.",
                        "rate_limit_exceeded",
                        [retry_after(decision.retry_after_s), *limit_headers],
                    )
                    return

        candidates = self.pool.for_model(model)
        if not candidates:
            self._refuse(
                conn,
                req,
                rec,
                404,
                "client_error",
                f"The model `{model}` does not exist or is not served here.",
                "model_not_found",
            )
            return
        healthy = tuple(n for n in candidates if self.pool.healthy[n]) or candidates

        t_admit = time.perf_counter()
        if self.admission is not None:
            try:
                permit = await self.admission.admit(who.tier, healthy)
            except asyncio.CancelledError:  # the client went away while queued
                rec["queue_ms"] = (time.perf_counter() - t_admit) * 1000.0
                self._unanswered(rec, req, "cancelled", 499)
                raise
            except Shed as shed:
                rec["queue_ms"] = (time.perf_counter() - t_admit) * 1000.0
                rec["attributes"]["shed_reason"] = shed.reason
                self._refuse(
                    conn,
                    req,
                    rec,
                    503,
                    "shed",
                    f"The gateway is over capacity for tier {who.tier} ({shed.reason}); "
                    "retry later.",
                    "overloaded",
                    [retry_after(shed.retry_after_s)],
                )
                return
        else:
            permit = _Direct(healthy[next(self._rr) % len(healthy)], who.tier, candidates)
        rec["queue_ms"] = (time.perf_counter() - t_admit) * 1000.0

        hide_usage = False
        payload = req.body
        if stream and route != "embedding":
            so = body.get("stream_options")
            if not (isinstance(so, dict) and so.get("include_usage")):
                # ask for usage on the client's behalf; the usage chunk is held back
                body["stream_options"] = {
                    **(so if isinstance(so, dict) else {}),
                    "include_usage": True,
                }
                payload = orjson.dumps(body)
                hide_usage = True
        keep_text = self.config.quality.enabled and route != "embedding"
        ok = False
        t_up = time.perf_counter()
        flight = _Flight(permit)
        try:
            ok = await self._forward(
                conn,
                req,
                rec,
                flight,
                payload,
                stream,
                hide_usage,
                keep_text,
                body,
                limit_headers,
                est_tokens,
                who,
            )
        finally:
            rtt = flight.head_s if flight.head_s is not None else time.perf_counter() - t_up
            flight.permit.release(self._upstream_rtt(rtt), ok)

    async def _forward(
        self,
        conn: Connection,
        req: Request,
        rec: dict[str, Any],
        flight: _Flight,
        payload: bytes,
        stream: bool,
        hide_usage: bool,
        keep_text: bool,
        body: dict[str, Any],
        limit_headers: list[tuple[bytes, bytes]],
        est_tokens: int,
        who: Identity,
    ) -> bool:
        headers = [(k, v) for k, v in req.headers.items() if k not in _HOP_REQ]
        target = req.path + (b"?" + req.query if req.query else b"")
        attempts = 0
        resp: Response | None = None
        usage = Usage()
        meter: StreamMeter | None = None
        finish: str | None = None
        text: str | None = None
        started = complete = False
        try:
            while True:
                upstream = flight.permit.upstream
                flight.sent = t_send = time.perf_counter()
                try:
                    resp = await self.clients[upstream].request(
                        b"POST", target, self._upstream_headers(headers, upstream), payload
                    )
                except UpstreamError as exc:
                    other = (
                        self._other_upstream(flight.permit, upstream, attempts)
                        if exc.before_first_byte
                        else None
                    )
                    if other is None:
                        raise
                    flight.permit, attempts = other, attempts + 1
                    continue
                flight.head_s = time.perf_counter() - t_send
                if resp.status in _RETRYABLE_STATUS:
                    other = self._other_upstream(flight.permit, upstream, attempts)
                    if other is not None:
                        resp.close()
                        flight.permit, attempts = other, attempts + 1
                        flight.head_s = None
                        continue
                break
            rec["attributes"]["upstream"] = upstream
            if attempts:
                rec["attributes"]["retries"] = str(attempts)
            status = resp.status
            out_headers = [(k, v) for k, v in resp.headers if k.lower() not in _HOP_RESP]
            out_headers.extend(limit_headers)
            ctype = resp.header(b"content-type") or b""
            if status == 200 and stream and ctype.startswith(b"text/event-stream"):
                meter = StreamMeter(hide_usage, keep_text)
                conn.write(head(status, out_headers, None, req.keep_alive))
                started = True
                await resp.relay(self._relayer(conn, meter, flight))
                rest = meter.rest()
                if rest:
                    conn.write(chunk(rest))
                conn.write(LAST_CHUNK)
                complete = True
                finish, text = meter.finish_reason, meter.text()
            else:
                data = await resp.read()
                complete = True
                conn.write(head(status, out_headers, len(data), req.keep_alive) + data)
                started = True
                if status < 300 and data:
                    finish, text = read_body(_plain(data, resp), usage)
            if not req.keep_alive:
                conn.close()
            rec["http_status"] = status
            rec["outcome"] = _outcome_of(status)
            if status == 429:
                rec["attributes"]["limited_by"] = "upstream"
        except asyncio.CancelledError:
            rec["outcome"], rec["http_status"] = "cancelled", 499
            self._finish(rec, req, usage, meter, finish, text, body, est_tokens, who)
            raise
        except UpstreamError as exc:
            timeout = isinstance(exc, UpstreamTimeout)
            status = 504 if timeout else 502
            rec["outcome"], rec["http_status"] = ("timeout" if timeout else "error"), status
            if started:
                conn.abort()  # the stream broke upstream: the client must see it broken
            else:
                code = "upstream_timeout" if timeout else "upstream_error"
                conn.write(error_response(status, str(exc), code, None, req.keep_alive))
                if not req.keep_alive:
                    conn.close()
        finally:
            if resp is not None:
                if complete:
                    resp.release()  # the connection goes back to the pool
                else:
                    resp.close()  # cancelled or broken: the upstream request stops too
        if rec["outcome"] != "cancelled":
            self._finish(rec, req, usage, meter, finish, text, body, est_tokens, who)
        return bool(rec["outcome"] == "ok")

    def _relayer(
        self, conn: Connection, meter: StreamMeter, flight: _Flight
    ) -> Callable[[bytes], asyncio.Future[None] | None]:
        """What a stream's upstream bytes go through, in the upstream connection's read
        callback: the meter, then the client; the limiter learns the TTFT at the first
        content chunk, not when the stream ends. Returns the client's drain future
        while its buffer is full (the upstream read pauses)."""
        observed = False
        rtt = self._upstream_rtt

        def on_data(data: bytes) -> asyncio.Future[None] | None:
            nonlocal observed
            out = meter.feed(data)
            if out:
                conn.write(chunk(out))
            if not observed and meter.first_token is not None:
                observed = True
                flight.head_s = meter.first_token - flight.sent
                flight.permit.observe(rtt(flight.head_s))
            return conn.paused

        return on_data

    def _upstream_headers(
        self, headers: list[tuple[bytes, bytes]], upstream: str
    ) -> list[tuple[bytes, bytes]]:
        key = self.upstream_keys.get(upstream)
        if key is None and not self.config.keys:
            return headers  # open gateway, no upstream key: the client's headers as sent
        out = [(k, v) for k, v in headers if k != b"authorization"]
        if key is not None:
            out.append((b"authorization", key))
        return out

    def _other_upstream(self, permit: Any, failed: str, attempts: int) -> Any:
        if attempts >= self.config.retries:
            return None
        if self.admission is not None:
            other = self.admission.try_other(permit, failed)
            if other is not None:
                permit.release(0.0, False)
            return other
        names = [n for n in permit.candidates if n != failed and self.pool.healthy[n]]
        return _Direct(names[0], permit.tier, permit.candidates) if names else None

    def _finish(
        self,
        rec: dict[str, Any],
        req: Request,
        usage: Usage,
        meter: StreamMeter | None,
        finish: str | None,
        text: str | None,
        body: dict[str, Any],
        est_tokens: int,
        who: Identity,
    ) -> None:
        now = time.perf_counter()
        latency = now - req.t0
        rec["latency_ms"] = latency * 1000.0
        if meter is not None:  # a stream, whole or broken off: what it has counted
            usage = meter.usage
            if usage.output_tokens is None and meter.chunks:
                usage.output_tokens, usage.estimated = meter.chunks, True
        ttft = tpot = None
        if meter is not None and meter.first_token is not None:
            ttft = meter.first_token - req.t0
            rec["ttft_ms"] = ttft * 1000.0
            if meter.chunks > 1:
                rec["itl_max_ms"] = meter.itl_max * 1000.0
        rec["input_tokens"], rec["output_tokens"] = usage.input_tokens, usage.output_tokens
        attrs = rec["attributes"]
        if usage.estimated:
            attrs["usage_estimated"] = "true"
        if usage.cached_tokens:
            attrs["cached_tokens"] = str(usage.cached_tokens)
        if finish:
            attrs["finish_reason"] = finish
        out_tokens = usage.output_tokens
        if ttft is not None and out_tokens is not None and out_tokens > 1:
            tpot = (latency - ttft) / (out_tokens - 1)
            rec["tpot_ms"] = tpot * 1000.0
        if self.prices is not None and usage.input_tokens is not None:
            price = self.prices.price(rec["model"])
            if price is not None:
                rec["cost_usd"] = price.cost(
                    usage.input_tokens, out_tokens or 0, usage.cached_tokens or 0
                )
        if self.ratelimiter is not None and est_tokens:
            actual = (usage.input_tokens or 0) + (out_tokens or 0)
            if actual:
                self.ratelimiter.settle(who.tenant, time.monotonic(), actual - est_tokens)
        self._record(rec, latency, ttft, tpot)
        if rec["outcome"] == "ok" and self.config.quality.enabled and rec["route"] != "embedding":
            results = run_checks(text, finish, wants_json(body), self._refusals)
            self.sink.add_checks(rec["event_id"], rec["ts"], rec["service"], results)


def _unauthorized() -> bytes:
    return error_response(401, "Incorrect API key provided.", "invalid_api_key")


def _outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    if status == 408 or status == 504:
        return "timeout"
    if status < 500:
        return "client_error"
    return "error"


def _plain(data: bytes, resp: Response) -> bytes:
    """The body for measuring only (the client gets the bytes as sent)."""
    enc = (resp.header(b"content-encoding") or b"").strip().lower()
    if not enc or enc == b"identity":
        return data
    try:
        if enc == b"gzip":
            return zlib.decompress(data, 16 + zlib.MAX_WBITS)
        if enc == b"deflate":
            return zlib.decompress(data)
    except zlib.error:
        return b""  # unreadable: the answer goes on unmeasured
    return b""


def _estimate_tokens(body: dict[str, Any], size: int) -> int:
    """What a request may use before it runs, as OpenAI's rate limiter counts it: the
    prompt (about 4 bytes a token) plus `max_tokens` (or a default of 256)."""
    mt = body.get("max_completion_tokens") or body.get("max_tokens")
    return size // 4 + (mt if isinstance(mt, int) and mt > 0 else 256)


def _duration(seconds: float) -> bytes:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return b"%dms" % max(0, round(seconds * 1000))
    s = int(seconds + 0.5)
    return b"%dm%ds" % divmod(s, 60) if s >= 60 else b"%ds" % s


def _ratelimit_headers(d: Any) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    if d.limit_requests is not None:
        out += [
            (b"x-ratelimit-limit-requests", b"%d" % d.limit_requests),
            (b"x-ratelimit-remaining-requests", b"%d" % max(0, d.remaining_requests)),
            (b"x-ratelimit-reset-requests", _duration(d.reset_requests_s)),
        ]
    if d.limit_tokens is not None:
        out += [
            (b"x-ratelimit-limit-tokens", b"%d" % d.limit_tokens),
            (b"x-ratelimit-remaining-tokens", b"%d" % max(0, d.remaining_tokens)),
            (b"x-ratelimit-reset-tokens", _duration(d.reset_tokens_s)),
        ]
    return out
