"""The gateway's Prometheus metrics, named after the OpenTelemetry GenAI metrics
(`gen_ai.server.time_to_first_token`, `gen_ai.server.time_per_output_token`,
`gen_ai.server.request.duration`, `gen_ai.client.token.usage`, in Prometheus form),
plus admission, shedding and event-delivery counters by tier.

Histograms are kept as plain bucket counts per label set and turned into Prometheus
families at scrape time, so an observation on the hot path is a dict lookup, a bisect
and two additions.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# OpenTelemetry's recommended bucket boundaries for these GenAI metrics (seconds)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


# the `average` label of slokit_gateway_upstream_rtt_seconds -> the admission snapshot key
_RTT_KEYS = (("short", "rtt_short_ms"), ("long", "rtt_long_ms"), ("hold", "hold_ms"))


class _Hist:
    """One label set of a histogram: a bisect and two additions per observation
    (prometheus_client's Histogram.observe measured 5x slower on this path)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class _Family:
    __slots__ = ("bounds", "children", "help", "labels", "name")

    def __init__(self, name: str, help: str, labels: tuple[str, ...], bounds: tuple[float, ...]):
        self.name, self.help, self.labels, self.bounds = name, help, labels, bounds
        self.children: dict[tuple[str, ...], _Hist] = {}

    def child(self, *values: str) -> _Hist:
        h = self.children.get(values)
        if h is None:
            h = self.children[values] = _Hist(self.bounds)
        return h

    def collect(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(self.name, self.help, labels=list(self.labels))
        for values, h in list(self.children.items()):
            running, buckets = 0, []
            for bound, n in zip((*self.bounds, float("inf")), h.counts, strict=True):
                running += n
                buckets.append((_le(bound), running))
            fam.add_metric(list(values), buckets, h.total)
        return fam


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        model = "gen_ai_request_model"
        self.ttft = _Family(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the request's arrival at the gateway to the first content chunk.",
            (model, "tier"),
            TTFT_BUCKETS,
        )
        self.tpot = _Family(
            "gen_ai_server_time_per_output_token_seconds",
            "(latency - TTFT) / (output tokens - 1), per streamed request.",
            (model, "tier"),
            TPOT_BUCKETS,
        )
        self.duration = _Family(
            "gen_ai_server_request_duration_seconds",
            "Time from arrival to the last byte of the answer.",
            (model, "tier", "outcome"),
            DURATION_BUCKETS,
        )
        self.tokens = _Family(
            "gen_ai_client_token_usage",
            "Tokens per request, by type (input or output).",
            (model, "gen_ai_token_type"),
            TOKEN_BUCKETS,
        )
        self.requests: dict[tuple[str, str], int] = {}
        self.registry.register(_HistCollector(self))

    def observe(
        self,
        model: str,
        tier: str,
        outcome: str,
        latency_s: float,
        ttft_s: float | None,
        tpot_s: float | None,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        key = (tier, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.duration.child(model, tier, outcome).observe(latency_s)
        if ttft_s is not None:
            self.ttft.child(model, tier).observe(ttft_s)
        if tpot_s is not None:
            self.tpot.child(model, tier).observe(tpot_s)
        if input_tokens is not None:
            self.tokens.child(model, "input").observe(input_tokens)
        if output_tokens is not None:
            self.tokens.child(model, "output").observe(output_tokens)

    def add_state(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Admission, shedding and delivery state, read at scrape time."""
        self.registry.register(_StateCollector(snapshot))


class _HistCollector(Collector):
    def __init__(self, m: GatewayMetrics) -> None:
        self.m = m

    def collect(self) -> Iterable[Any]:
        for fam in (self.m.ttft, self.m.tpot, self.m.duration, self.m.tokens):
            yield fam.collect()
        req = CounterMetricFamily(
            "slokit_gateway_requests",
            "Requests answered, by tier and outcome.",
            labels=["tier", "outcome"],
        )
        for (tier, outcome), n in list(self.m.requests.items()):
            req.add_metric([tier, outcome], n)
        yield req


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Any]:
        s = self.snapshot()
        admitted = CounterMetricFamily(
            "slokit_gateway_admitted", "Requests admitted past the queue, by tier.", labels=["tier"]
        )
        for tier, n in s.get("admitted", {}).items():
            admitted.add_metric([tier], n)
        shed = CounterMetricFamily(
            "slokit_gateway_shed",
            "Requests refused with 503 to protect objectives, by tier and reason.",
            labels=["tier", "reason"],
        )
        for (tier, reason), n in s.get("shed", {}).items():
            shed.add_metric([tier, reason], n)
        limited = CounterMetricFamily(
            "slokit_gateway_rate_limited", "Requests refused with 429, by tier.", labels=["tier"]
        )
        for tier, n in s.get("rate_limited", {}).items():
            limited.add_metric([tier], n)
        queue = GaugeMetricFamily(
            "slokit_gateway_queue_length", "Requests waiting for admission.", labels=["tier"]
        )
        for tier, n in s.get("queued", {}).items():
            queue.add_metric([tier], n)
        limit = GaugeMetricFamily(
            "slokit_gateway_concurrency_limit",
            "Adaptive concurrency limit toward each upstream.",
            labels=["upstream"],
        )
        inflight = GaugeMetricFamily(
            "slokit_gateway_in_flight", "Requests in flight to each upstream.", labels=["upstream"]
        )
        healthy = GaugeMetricFamily(
            "slokit_gateway_upstream_healthy",
            "1 when the upstream passes its health check.",
            labels=["upstream"],
        )
        rtt = GaugeMetricFamily(
            "slokit_gateway_upstream_rtt_seconds",
            "The concurrency limiter's view of each upstream: its short-term and long-run"
            " average round trip (TTFT for streams), and how long a request holds a slot.",
            labels=["upstream", "average"],
        )
        reserved = GaugeMetricFamily(
            "slokit_gateway_reserved_slots",
            "Slots of each upstream's concurrency limit kept for a tier with a reserved"
            " share: its recent peak need plus a margin, up to its share.",
            labels=["upstream", "tier"],
        )
        for name, u in s.get("upstreams", {}).items():
            for tier, n in u.get("reserved", {}).items():
                reserved.add_metric([name, tier], n)
            for average, key in _RTT_KEYS:
                if key in u:
                    rtt.add_metric([name, average], u[key] / 1000.0)
            limit.add_metric([name], u.get("limit", 0))
            inflight.add_metric([name], u.get("in_flight", 0))
            healthy.add_metric([name], 1 if u.get("healthy", True) else 0)
        protected = GaugeMetricFamily(
            "slokit_gateway_tier_protected",
            "1 while a tier's error budget burns too fast and lower tiers yield to it.",
            labels=["tier"],
        )
        for tier, on in s.get("protected", {}).items():
            protected.add_metric([tier], 1 if on else 0)
        dropped = CounterMetricFamily(
            "slokit_gateway_events_dropped",
            "Events dropped because the delivery buffer was full.",
            labels=["kind"],
        )
        delivered = CounterMetricFamily(
            "slokit_gateway_events_delivered", "Events delivered to the store.", labels=["kind"]
        )
        lag = GaugeMetricFamily(
            "slokit_gateway_event_loop_lag_seconds",
            "How late the gateway's event loop runs its timers (average): its own delay,"
            " taken off the latency its concurrency limiter learns from.",
        )
        lag.add_metric([], s.get("loop_lag_ms", 0.0) / 1000.0)
        for kind, n in s.get("dropped", {}).items():
            dropped.add_metric([kind], n)
        for kind, n in s.get("delivered", {}).items():
            delivered.add_metric([kind], n)
        yield from (
            lag,
            admitted,
            shed,
            limited,
            queue,
            limit,
            reserved,
            rtt,
            inflight,
            healthy,
            protected,
            dropped,
            delivered,
        )
