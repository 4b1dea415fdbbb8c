"""The shared scan counts each request as the contract's rules say, request by request:
what is counted, failed, slow, removed as customer-caused, preview or ignored back-off,
and what usage costs. Checked against those rules written out in Python over a small
store holding every combination."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from slokit.core.windows import to_minute
from slokit.events.schema import ATTRIBUTES
from slokit.events.validate import validate
from slokit.sla.contract import Contract, loads_contracts
from slokit.sla.counts import latency_target, scan
from slokit.store import DuckDBStore

CONTRACTS = """\
apiVersion: slokit/v1
kind: contracts
contracts:
  - name: fast
    customer: acme
    services: [llm-api]
    routes: [chat, rag]
    commitment: 99
    measurement: {method: latency_attainment, field: ttft_ms, threshold_ms: 500}
    credits: [{below: 99, credit: 10}]
    fee: {from: usage}
    exclusions: {preview: {models: [beta], routes: [rag]}}
  - name: slow
    customer: globex
    services: [llm-api]
    routes: [chat, rag]
    commitment: 99
    measurement: {method: latency_attainment, field: latency_ms, threshold_ms: 2000}
    credits: [{below: 99, credit: 10}]
    fee: 100
    exclusions: {preview: {models: [beta], routes: [rag]}}
"""
T0 = datetime(2026, 10, 1, tzinfo=UTC)
OUTCOMES = ["ok", "error", "timeout", "shed", "client_error", "rate_limited", "cancelled"]


def events() -> list[dict[str, Any]]:
    """Every combination of tenant, route, model, outcome, latency, back-off and price,
    spread over a few minutes, plus requests the contracts do not cover."""
    rows = []
    combos = itertools.product(
        ["acme", "globex"],
        ["chat", "rag", None],
        ["gpt", "beta", None],
        OUTCOMES,
        [None, 100.0, 900.0, 2500.0],  # ttft_ms and latency_ms
        [None, "true", "false"],  # attributes.backoff_ignored
        [None, 0.125],  # cost_usd
    )
    for n, (tenant, route, model, outcome, ms, backoff, cost) in enumerate(combos):
        rows.append(
            {
                "event_id": f"e{n}",
                "ts": T0 + timedelta(minutes=n % 7, seconds=n % 60),
                "service": "llm-api",
                "tenant": tenant,
                "route": route,
                "model": model,
                "outcome": outcome,
                "ttft_ms": ms,
                "latency_ms": ms,
                "cost_usd": cost,
                "attributes": None if backoff is None else [("backoff_ignored", backoff)],
            }
        )
    n = len(rows)
    rows.append({**rows[0], "event_id": f"e{n}", "service": "embed"})  # another service
    rows.append({**rows[0], "event_id": f"e{n + 1}", "route": "files"})  # another route
    rows.append({**rows[0], "event_id": f"e{n + 2}", "tenant": "initech"})  # no contract
    return rows


SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("service", pa.string()),
        ("tenant", pa.string()),
        ("route", pa.string()),
        ("model", pa.string()),
        ("outcome", pa.string()),
        ("ttft_ms", pa.float64()),
        ("latency_ms", pa.float64()),
        ("cost_usd", pa.float64()),
        ("attributes", ATTRIBUTES),
    ]
)


def expected(c: Contract, rows: list[dict[str, Any]]) -> dict[str, dict[int, Any]]:
    """The contract's rules, request by request."""
    out: dict[str, dict[int, Any]] = defaultdict(lambda: defaultdict(int))
    target = latency_target(c)
    assert target is not None
    for r in rows:
        if r["tenant"] != c.customer or r["service"] not in c.services:
            continue
        if r["route"] not in c.routes:
            continue
        minute = to_minute(r["ts"])
        customer = r["outcome"] in c.customer_outcomes
        preview = r["model"] in c.preview_models or r["route"] in c.preview_routes
        backoff = dict(r["attributes"] or []).get("backoff_ignored") == "true"
        counted = not (customer or preview or backoff)
        ms = r[target[0]]
        meets = r["outcome"] == "ok" and ms is not None and ms <= target[1]
        out["total"][minute] += counted
        out["failed"][minute] += counted and r["outcome"] in c.failed_outcomes
        out["slow"][minute] += counted and not meets
        out["customer_caused"][minute] += customer
        out["preview"][minute] += preview
        out["ignored_backoff"][minute] += backoff
        out["covered"][minute] += 1
        out["unpriced"][minute] += r["cost_usd"] is None
        out["cost"][minute] += Decimal(repr(r["cost_usd"] or 0.0))
    return out


def per_minute(cols: dict[str, np.ndarray], name: str) -> dict[int, Any]:
    sums: dict[int, Any] = defaultdict(int)
    for minute, value in zip(cols["minute"].tolist(), cols[name].tolist(), strict=True):
        sums[minute] += value
    return sums


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rows = events()
    contracts = loads_contracts(CONTRACTS)
    targets = [t for c in contracts if (t := latency_target(c))]
    path: Path = tmp_path_factory.mktemp("counts") / "e.duckdb"
    with DuckDBStore(path) as store:
        store.append(
            "request", validate(pa.Table.from_pylist(rows, schema=SCHEMA), "request").table
        )
        lo, hi = to_minute(T0), to_minute(T0) + 60
        return rows, contracts, scan(store, contracts, lo, hi, targets, usage=True)


@pytest.mark.parametrize(
    "name",
    ["total", "failed", "slow", "customer_caused", "preview", "ignored_backoff", "covered",
     "unpriced", "cost"],
)  # fmt: skip
@pytest.mark.parametrize("contract", [0, 1], ids=["acme by ttft", "globex by latency"])
def test_the_scan_counts_each_kind_of_request_as_the_rules_say(
    counted: Any, contract: int, name: str
) -> None:
    rows, contracts, by_customer = counted
    c = contracts[contract]
    cols = dict(by_customer[c.customer])
    cols["slow"] = cols[f"slow_{contract}"]  # one latency target each, in contract order
    want = {m: v for m, v in expected(c, rows)[name].items() if v}
    got = {m: v for m, v in per_minute(cols, name).items() if v}
    assert got == want
    assert sum(want.values()) > 0  # every kind occurs: the comparison says something


def test_the_scan_reads_only_the_contracts_customers(counted: Any) -> None:
    _, _, by_customer = counted
    assert sorted(by_customer) == ["acme", "globex"]


def test_a_request_late_in_a_minute_counts_in_that_minute(tmp_path: Path) -> None:
    """Whole minutes, as the SLO rollups count them: 45 s into the month's last minute
    is still the month (a rounded minute would move it into the next)."""
    from slokit.sla.compute import compute

    last = {
        "event_id": "late",
        "ts": datetime(2026, 10, 31, 23, 59, 45, tzinfo=UTC),
        "service": "llm-api",
        "tenant": "acme",
        "route": "chat",
        "model": "gpt",
        "outcome": "error",
        "ttft_ms": None,
        "latency_ms": None,
        "cost_usd": 0.5,
        "attributes": None,
    }
    with DuckDBStore(tmp_path / "e.duckdb") as store:
        table = pa.Table.from_pylist([last], schema=SCHEMA)
        store.append("request", validate(table, "request").table)
        fast, _ = compute(store, loads_contracts(CONTRACTS), "2026-10")
    assert fast.requests["failed"] == 1
    assert [p.start for p in fast.measurement.periods] == [to_minute(last["ts"])]
    assert fast.fee.source == "usage: 1 request, cost 0.50 USD"
