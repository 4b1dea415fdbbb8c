"""Self-hosted cost attribution: the GPU time of a deployment in each period, split
over the requests it served by their share of tokens. Computed and reported, never
stored: a stored cost would go stale as late events arrive for the same period."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from slokit.cost.costed import ceil_period, costed_sql, floor_period
from slokit.cost.pricebook import PriceBook
from slokit.store.duckdb_store import DuckDBStore


@dataclass(frozen=True)
class PoolPeriod:
    """One self-hosted pool in one attribution period."""

    pool: str
    instance: str
    period_start: datetime
    requests: int
    tokens: int
    cost_usd: float  # hourly_cost x replicas x period hours, all of it attributed
    gpu_hours: float  # gpus x replicas x period hours

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "instance": self.instance,
            "period_start": self.period_start.isoformat(),
            "requests": self.requests,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "gpu_hours": self.gpu_hours,
        }


@dataclass(frozen=True)
class SelfHostedReport:
    start: datetime  # widened to whole attribution periods
    end: datetime
    period_minutes: int
    periods: list[PoolPeriod] = field(default_factory=list)
    # one row per request: event_id, ts, service, model, deployment, pool, instance,
    # period_start, tokens, share, gpu_hours, cost_usd (attributed), recorded_usd
    requests: pa.Table | None = None

    @property
    def cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.periods)

    def to_dict(self, *, with_requests: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "period_minutes": self.period_minutes,
            "cost_usd": self.cost_usd,
            "periods": [p.to_dict() for p in self.periods],
        }
        if with_requests and self.requests is not None:
            data["requests"] = self.requests.to_pylist()
        return data


def attribute_self_hosted(
    store: DuckDBStore, book: PriceBook, start: datetime, end: datetime
) -> SelfHostedReport:
    """The attributed GPU cost of every request served by a pool of `book` in the
    periods that overlap [start, end), per request and per (pool, period). Periods
    without requests are not in the report: nothing says the instance ran then."""
    minutes = book.period_minutes
    lo, hi = floor_period(start, minutes), ceil_period(end, minutes)
    if not book.pools:
        return SelfHostedReport(lo, hi, minutes, [], None)
    costed, params = costed_sql(book, start, end, whole_periods=True)
    requests = store.query(
        "SELECT event_id, ts, service, model, deployment, pool, instance, period_start, "
        "tokens, share, gpu_hours, attributed_usd AS cost_usd, recorded_usd "
        f"FROM ({costed}) WHERE pool IS NOT NULL ORDER BY pool, ts, event_id",
        params,
    )
    groups = store.query(
        "SELECT pool, any_value(instance) AS instance, period_start, count(*) AS requests, "
        "sum(tokens)::BIGINT AS tokens, any_value(period_usd) AS cost_usd, "
        "any_value(period_gpu_hours) AS gpu_hours "
        f"FROM ({costed}) WHERE pool IS NOT NULL GROUP BY pool, period_start "
        "ORDER BY pool, period_start",
        params,
    )
    periods = [PoolPeriod(**row) for row in groups.to_pylist()]
    return SelfHostedReport(lo, hi, minutes, periods, requests)
