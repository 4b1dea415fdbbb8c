"""slokit's own Prometheus metrics, in a registry per server (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "slokit_ingest_records",
            "Records received by the ingest API, by kind and result.",
            ["kind", "result"],
            registry=self.registry,
        )
        self.requests = Counter(
            "slokit_http_requests",
            "HTTP requests served, by route and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "slokit_store_write_seconds",
            "Time to validate and commit one ingest batch.",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.stored = Gauge(
            "slokit_store_events",
            "Events in the store, by kind.",
            ["kind"],
            registry=self.registry,
        )
