"""Shared fixtures: a fresh store, and a compact way to write hand-made events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from slokit.events.validate import validate_records
from slokit.spec import Spec, loads
from slokit.store import DuckDBStore

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(tmp_path / "events.duckdb") as s:
        yield s


def at(minutes: float = 0, seconds: float = 0, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes, seconds=seconds)


def event(minute: float, outcome: str = "ok", **fields: Any) -> dict[str, Any]:
    """One request event `minute` minutes after T0 (service `svc`)."""
    rec: dict[str, Any] = {"ts": at(minute).isoformat(), "service": "svc", "outcome": outcome}
    rec.update(fields)
    return rec


def put(store: DuckDBStore, records: list[dict[str, Any]], kind: str = "request") -> None:
    checked = validate_records(records, kind)
    assert checked.rejected == [], [str(r) for r in checked.rejected]
    store.append(kind, checked.table)


def spec_of(slos_yaml: str, service: str = "svc") -> Spec:
    return loads(f"apiVersion: slokit/v1\nservice: {service}\nslos:\n{slos_yaml}")


def metric(text: str, sample: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {sample}{labels} in /metrics")


@contextlib.asynccontextmanager
async def aiohttp_app(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """An aiohttp server on a free 127.0.0.1 port answering every path with `handler`;
    yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
