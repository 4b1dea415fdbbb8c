"""SLA months from a real store: the contract's filters and exclusions applied, the
method's uptime, the credit, a per-customer report and the month in progress."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from typer.testing import CliRunner

from slokit.cli import app
from slokit.events.validate import validate
from slokit.sla.compute import compute
from slokit.sla.contract import loads_contracts
from slokit.store import DuckDBStore

CONTRACTS = """\
apiVersion: slokit/v1
kind: contracts
contracts:
  - name: acme-gold
    customer: acme
    services: [llm-api]
    commitment: 99.9
    measurement: interval_error_rate
    credits: [{below: 99.9, credit: 10}, {below: 99.0, credit: 25}]
    fee: 1000
    exclusions:
      maintenance:
        - {start: "2026-10-10T02:00:00Z", duration: 30m, announced: "2026-10-01T00:00:00Z",
           reason: planned}
  - name: globex-std
    customer: globex
    services: [llm-api]
    commitment: 99.5
    measurement: request_based
    credits: [{below: 99.5, credit: 10}]
    fee: 500
"""
OCT = datetime(2026, 10, 1, tzinfo=UTC)
MONTH = 31 * 1440


def month_of_traffic(store: DuckDBStore, tenant: str, bad: set[int], client: set[int]) -> None:
    """One request a minute for October 2026; minutes in `bad` fail, in `client` 4xx."""
    minutes = np.arange(MONTH)
    outcome = np.where(
        np.isin(minutes, list(bad)),
        "error",
        np.where(np.isin(minutes, list(client)), "client_error", "ok"),
    )
    ts = pa.array((OCT.timestamp() + minutes * 60.0 + 1) * 1e6).cast(pa.int64())
    table = pa.table(
        {
            "event_id": pa.array([f"{tenant}{m}" for m in minutes]),
            "ts": ts.cast(pa.timestamp("us", tz="UTC")),
            "service": pa.array(["llm-api"] * MONTH),
            "tenant": pa.array([tenant] * MONTH),
            "outcome": pa.array(outcome),
        }
    )
    store.append("request", validate(table, "request").table)


def test_each_contract_is_measured_its_own_way_with_its_exclusions(tmp_path: Path) -> None:
    maintenance = 9 * 1440 + 120  # 2026-10-10 02:00 UTC, minute of the month
    with DuckDBStore(tmp_path / "e.duckdb") as store:
        # acme: a 10-minute outage (2 intervals) and 10 failures inside the maintenance
        month_of_traffic(
            store, "acme", set(range(600, 610)) | set(range(maintenance, maintenance + 10)), set()
        )
        # globex: 30 failed requests and 100 client errors (customer-caused: removed)
        month_of_traffic(store, "globex", set(range(1000, 1030)), set(range(5000, 5100)))
        acme, globex = compute(store, loads_contracts(CONTRACTS), "2026-10")
    # acme: 8,928 intervals, 6 of them inside the maintenance leave the mean: 8,922;
    # two intervals at 100% errors: uptime = 100 - 200/8922
    assert acme.measurement.uptime == 100 - 200 / 8922
    # 99.9776% is not below 99.9: met, no credit
    assert acme.to_dict()["met"] and acme.credit.percent == 0
    applied = [e for e in acme.exclusions if e["kind"] == "maintenance"]
    assert applied[0]["applied"] is True and applied[0]["minutes"] == 30
    # globex: 44,640 - 100 customer-caused = 44,540 counted, 30 failed
    assert globex.measurement.uptime == 100 * (44540 - 30) / 44540
    assert globex.requests["customer_caused"] == 100
    assert globex.credit.percent == 0


def test_a_month_in_progress_has_a_projection(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "e.duckdb") as store:
        month_of_traffic(store, "acme", set(range(100, 160)), set())  # a 1-hour outage
        (acme,) = compute(
            store, loads_contracts(CONTRACTS)[:1], "2026-10", now=datetime(2026, 10, 11, tzinfo=UTC)
        )
    assert acme.in_progress
    # 10 days: 2,880 intervals, 6 in the maintenance left out, 12 failed:
    # 99.58% < 99.9, the 10% tier of 1,000
    assert acme.measurement.uptime == 100 - 1200 / 2874
    p = acme.to_dict()["projection"]
    assert p["credit_at_risk"] == 100.0
    assert p["summary"].startswith("at the current rate, credits at risk this month: 100.00 USD")


def test_the_cli_writes_a_customer_report_with_that_customer_only(tmp_path: Path) -> None:
    db, contracts = tmp_path / "e.duckdb", tmp_path / "contracts.yaml"
    contracts.write_text(CONTRACTS)
    with DuckDBStore(db) as store:
        month_of_traffic(store, "acme", set(range(600, 610)), set())
        month_of_traffic(store, "globex", set(range(1000, 1030)), set())
    common = ["--contracts", str(contracts), "--db", str(db)]
    status = CliRunner().invoke(app, ["sla", "status", *common, "--month", "2026-10", "--json"])
    assert status.exit_code == 0, status.output
    names = [c["contract"] for c in json.loads(status.stdout)["contracts"]]
    assert names == ["acme-gold", "globex-std"]
    out = tmp_path / "acme.json"
    report = CliRunner().invoke(
        app,
        ["report", "sla", *common, "--month", "2026-10", "--customer", "acme",
         "--format", "json", "--out", str(out)],
    )  # fmt: skip
    assert report.exit_code == 0, report.output
    text = out.read_text()
    assert "acme-gold" in text and "globex" not in text
