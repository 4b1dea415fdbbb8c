"""The CLI end to end on a real store: the same library results, printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slokit.cli import app
from slokit.store import DuckDBStore

runner = CliRunner()


def test_init_writes_a_spec_that_validates(tmp_path: Path) -> None:
    spec = tmp_path / "slokit.yaml"
    assert runner.invoke(app, ["init", str(spec)]).exit_code == 0
    again = runner.invoke(app, ["init", str(spec)])
    assert again.exit_code == 1 and "pass --force" in again.output
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0
    assert "service llm-api, 11 SLOs" in result.output


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "apiVersion: slokit/v1\nservice: s\nslos:\n  - name: a\n    objectiv: 9\n"
        "    sli: availability\n"
    )
    result = runner.invoke(app, ["validate", str(spec), "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert (
        f"{spec}:5: slos[0].objectiv: unknown field `objectiv` — did you mean `objective`?"
        in (problems[0])
    )


def test_ingest_then_status_json(tmp_path: Path) -> None:
    db, spec, data = tmp_path / "e.duckdb", tmp_path / "s.yaml", tmp_path / "e.jsonl"
    spec.write_text(
        "apiVersion: slokit/v1\nservice: chat\nslos:\n  - name: avail\n"
        "    objective: 99\n    window: 1d\n    sli: availability\n"
    )
    rows = [
        {
            "ts": f"2026-11-01T12:{m:02d}:00Z",
            "service": "chat",
            "outcome": "error" if m == 7 else "ok",
        }
        for m in range(50)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    result = runner.invoke(app, ["ingest", str(data), "--db", str(db), "--json"])
    assert result.exit_code == 1  # one line rejected
    report = json.loads(result.stdout)
    assert (report["accepted"], report["rejected"]) == (50, 1)
    assert report["files"][0]["rejections"][0]["line"] == 51
    result = runner.invoke(
        app,
        [
            "status",
            "--db",
            str(db),
            "--spec",
            str(spec),
            "--at",
            "2026-11-01T13:00:00Z",
            "--json",
            "--no-timeline",
        ],
    )
    assert result.exit_code == 0, result.output
    [status] = json.loads(result.stdout)["statuses"]
    assert (status["good"], status["valid"], status["sli"]) == (49, 50, 98.0)
    assert status["error_budget"]["consumed"] == 2.0
    assert "timeline" not in status
    table = runner.invoke(
        app, ["status", "--db", str(db), "--spec", str(spec), "--at", "2026-11-01T13:00:00Z"]
    )
    assert table.exit_code == 0
    assert "avail" in table.output and "98.000% / 99%" in table.output


def test_status_with_an_unknown_slo_names_the_ones_there_are(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "apiVersion: slokit/v1\nservice: chat\nslos:\n  - name: avail\n"
        "    objective: 99\n    sli: availability\n"
    )
    db = tmp_path / "e.duckdb"
    missing = runner.invoke(app, ["status", "--db", str(db), "--spec", str(spec)])
    assert missing.exit_code == 2 and "no event store here" in missing.stderr
    DuckDBStore(db).close()
    result = runner.invoke(app, ["status", "--db", str(db), "--spec", str(spec), "--slo", "nope"])
    assert result.exit_code == 2
    assert "no SLO named 'nope' in the spec; SLOs: avail" in result.stderr


def test_demo_json_is_deterministic(tmp_path: Path) -> None:
    args = [
        "demo",
        "--days",
        "7",
        "--rate",
        "3",
        "--seed",
        "5",
        "--end",
        "2026-11-23T00:00:00Z",
        "--json",
    ]
    a = runner.invoke(
        app, [*args, "--db", str(tmp_path / "a.duckdb"), "--spec-out", str(tmp_path / "a.yaml")]
    )
    b = runner.invoke(
        app, [*args, "--db", str(tmp_path / "b.duckdb"), "--spec-out", str(tmp_path / "b.yaml")]
    )
    assert a.exit_code == 0, a.output
    da, db_ = json.loads(a.stdout), json.loads(b.stdout)
    assert da["statuses"] == db_["statuses"]
    assert da["requests"] > 0 and len({s["slo"] for s in da["statuses"]}) == 12


def test_ingest_fills_missing_costs_from_a_price_book(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  m-a: {input_cost_per_token: 1.0e-06, output_cost_per_token: 3.0e-06}\n"
    )
    base = {"ts": "2026-11-01T00:00:00Z", "service": "s", "outcome": "ok"}
    rows = [
        {**base, "event_id": "1", "model": "m-a", "input_tokens": 100, "output_tokens": 10},
        {**base, "event_id": "2", "model": "m-a", "input_tokens": 1, "output_tokens": 1,
         "cost_usd": 0.5},  # recorded: kept
        {**base, "event_id": "3", "model": "m-z", "input_tokens": 5, "output_tokens": 5},
    ]  # fmt: skip
    data = tmp_path / "e.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = tmp_path / "c.duckdb"
    result = runner.invoke(
        app, ["ingest", str(data), "--db", str(db), "--prices", str(prices), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["files"][0]
    assert report["costs_filled"] == 1 and report["unpriced"] == {"m-z": 1}
    with DuckDBStore(db, read_only=True) as store:
        got = store.query("SELECT event_id, cost_usd FROM request_events ORDER BY 1").to_pylist()
    assert got[0]["cost_usd"] == pytest.approx(100e-6 + 30e-6)
    assert got[1]["cost_usd"] == 0.5 and got[2]["cost_usd"] is None
