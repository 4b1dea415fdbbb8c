"""SLA reports are golden: one small hand-made month (March 2025, with the switch to
summer time in Berlin) goes through the real DuckDB store, the contract's own
measurement method, its exclusions and its fee source, and the JSON and CSV reports
must equal `tests/golden/sla/` byte for byte, written by the library and by the CLI.

The month holds a counted outage, maintenance announced in time (applied) and too
late (counted), a provider incident, customer-caused requests, requests without a
price, and a credit owed on each contract: fixed fee, fee billed from usage, fee
from a fees file.

Regenerate the golden files with
`SLOKIT_UPDATE_GOLDEN=1 uv run pytest tests/test_sla_golden.py`, then read the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from slokit.cli import app
from slokit.events.validate import validate
from slokit.sla.compute import compute
from slokit.sla.contract import load_contracts
from slokit.sla.render import write_report
from slokit.store import DuckDBStore

GOLDEN = Path(__file__).resolve().parent / "golden" / "sla"
UPDATE = os.environ.get("SLOKIT_UPDATE_GOLDEN") == "1"
MONTH = "2025-03"

CONTRACTS = """\
apiVersion: slokit/v1
kind: contracts
contracts:
  - name: acme-gold
    customer: acme
    services: [llm-api]
    commitment: 99.9
    measurement: {method: interval_error_rate, interval: 5m}
    credits: [{below: 99.9, credit: 10}, {below: 99.0, credit: 25}]
    fee: 2000
    exclusions:
      notice: 72h
      maintenance:
        - {start: "2025-03-10T02:00:00Z", duration: 1h, announced: "2025-03-01T09:00:00Z",
           reason: database upgrade}
        - {start: "2025-03-20T02:00:00Z", duration: 30m, announced: "2025-03-19T20:00:00Z",
           reason: router swap}
      incidents:
        - {start: "2025-03-15T10:00:00Z", end: "2025-03-15T10:30:00Z",
           cause: upstream_provider, reason: provider outage}
  - name: globex-usage
    customer: globex
    services: [llm-api]
    commitment: 99.9
    measurement: request_based
    credits: [{below: 99.9, credit: 10}]
    fee: {from: usage, markup: 20, minimum: 100}
    timezone: Europe/Berlin
  - name: initech-std
    customer: initech
    services: [llm-api]
    commitment: 99.99
    measurement: {method: downtime_minutes, period: 1m, threshold: 5}
    credits: [{below: 99.99, credit: 5}]
    fee: {from: file, path: fees.csv}
"""
FEES = "contract,month,fee\ninitech-std,2025-02,3000\ninitech-std,2025-03,3100\n"

# one request every 5 minutes, one second past the minute, from the start of March in
# Berlin (23:00 UTC) to the end of March in UTC
START = datetime(2025, 2, 28, 23, 0, tzinfo=UTC)
SLOTS = (datetime(2025, 4, 1, tzinfo=UTC) - START) // timedelta(minutes=5)


def slots(first: str, minutes: int) -> set[int]:
    """The 5-minute slots from `first` (UTC) for `minutes`."""
    at = (datetime.fromisoformat(first).replace(tzinfo=UTC) - START) // timedelta(minutes=5)
    return set(range(at, at + minutes // 5))


FAILED = {
    "acme": slots("2025-03-05T10:00", 60)  # counted: 12 intervals
    | slots("2025-03-10T02:00", 60)  # in the announced maintenance: excluded
    | slots("2025-03-15T10:00", 30)  # in the provider incident: excluded
    | slots("2025-03-20T02:00", 30),  # in the maintenance announced late: counted
    "globex": slots("2025-03-12T08:00", 60),
    "initech": slots("2025-03-20T14:00", 30),
}
CLIENT_ERRORS = {"globex": slots("2025-03-03T09:00", 15)}


def traffic(tenant: str) -> pa.Table:
    n = np.arange(SLOTS)
    outcome = np.where(
        np.isin(n, sorted(FAILED[tenant])),
        "error",
        np.where(np.isin(n, sorted(CLIENT_ERRORS.get(tenant, ()))), "client_error", "ok"),
    )
    ts = (START.timestamp() + n * 300 + 1) * 1_000_000
    cost = [None if i % 97 == 0 else 0.05 + (i % 7) / 1000 for i in range(SLOTS)]
    table = pa.table(
        {
            "event_id": pa.array([f"{tenant}-{i}" for i in n]),
            "ts": pa.array(ts.astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            "service": pa.array(["llm-api"] * SLOTS),
            "tenant": pa.array([tenant] * SLOTS),
            "outcome": pa.array(outcome),
            "cost_usd": pa.array(cost, pa.float64()),
        }
    )
    return validate(table, "request").table


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(contracts file, store) of the hand-made month."""
    root = tmp_path_factory.mktemp("golden")
    (root / "contracts.yaml").write_text(CONTRACTS)
    (root / "fees.csv").write_text(FEES)
    with DuckDBStore(root / "events.duckdb") as store:
        for tenant in FAILED:
            store.append("request", traffic(tenant))
    return root / "contracts.yaml", root / "events.duckdb"


def assert_golden(name: str, written: Path) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(written.read_bytes())
    assert written.read_bytes() == path.read_bytes(), f"{path} differs; see the module docstring"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_library_writes_the_golden_report(
    month: tuple[Path, Path], tmp_path: Path, fmt: str
) -> None:
    contracts, db = month
    with DuckDBStore(db, read_only=True) as store:
        results = compute(store, load_contracts(contracts), MONTH)
    out = tmp_path / f"report.{fmt}"
    write_report([r.to_dict() for r in results], fmt, out, title=f"SLA report {MONTH}")
    assert_golden(f"report.{fmt}", out)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_cli_writes_the_same_golden_report(
    month: tuple[Path, Path], tmp_path: Path, fmt: str
) -> None:
    contracts, db = month
    out = tmp_path / f"report.{fmt}"
    result = CliRunner().invoke(
        app,
        ["report", "sla", "--month", MONTH, "--format", fmt, "--out", str(out),
         "--contracts", str(contracts), "--db", str(db)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (GOLDEN / f"report.{fmt}").read_bytes()


def test_the_golden_month_holds_what_it_claims(month: tuple[Path, Path]) -> None:
    """The golden files are only worth their contents: each contract owes a credit,
    with downtime evidence, and each kind of exclusion is in there."""
    contracts, db = month
    with DuckDBStore(db, read_only=True) as store:
        acme, globex, initech = (
            r.to_dict() for r in compute(store, load_contracts(contracts), MONTH)
        )
    # acme: 8,928 intervals, 12 + 6 wholly excluded; 12 + 6 failed at 100%
    assert acme["uptime"] == round(100 - 1800 / 8910, 6)
    assert (acme["credit"], len(acme["downtime"])) == (200.0, 18)
    assert [(x["kind"], x["applied"]) for x in acme["exclusions"]] == [
        ("maintenance", True),
        ("maintenance", False),
        ("incident", True),
    ]
    # globex: March in Berlin is 44,580 minutes (summer time starts on the 30th): 8,916
    # requests, 3 client errors removed, 12 failed
    assert (globex["good"], globex["total"]) == (8901.0, 8913.0)
    assert (globex["start"], globex["end"]) == (
        "2025-03-01T00:00:00+01:00",
        "2025-04-01T00:00:00+02:00",
    )
    assert globex["exclusions"][0]["kind"] == "customer_caused"
    assert globex["fee_source"].startswith("usage: 8,916 requests (92 without a price")
    assert globex["credit"] == round(globex["fee"] * 0.1, 2) > 0
    assert globex["warnings"][0].startswith("92 of the 8,916 covered requests had no price")
    # initech: 6 down minutes of 44,640; 5% of the fees file's 3,100
    assert initech["uptime"] == round(100 * (44640 - 6) / 44640, 6)
    assert (initech["credit"], initech["fee_source"]) == (155.0, "fees file fees.csv, line 3")
