"""The release gate and annotations: the workbook's example policy as the default,
exit codes for CI/CD, reasons naming the SLOs, what each deploy cost."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from slokit.alerting.engine import AlertEngine
from slokit.alerting.gate import decide
from slokit.cli import app
from slokit.engine import Evaluator
from slokit.store import DuckDBStore

from conftest import at, spec_of
from test_alerting import traffic

runner = CliRunner()

SLOS = """\
  - name: availability
    objective: 99.9
    sli: {availability: {}}
  - name: latency
    objective: 99
    sli: {latency: {threshold_ms: 1000}}
"""


def _spec_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "slokit.yaml"
    path.write_text(f"apiVersion: slokit/v1\nservice: svc\n{extra}slos:\n{SLOS}")
    return path


def _gate(tmp_path: Path, db: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(
        app,
        [
            "gate",
            "--service",
            "svc",
            "--spec",
            str(_spec_file(tmp_path)),
            "--db",
            str(db),
            "--at",
            at(0).isoformat(),
            "--json",
            *args,
        ],
    )
    return result.exit_code, json.loads(result.stdout)


def test_the_gate_holds_a_feature_when_the_budget_is_spent_and_ships_security(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db) as store:
        # 2 days at 100/min; 1% errors for the last 6 hours: 360 x 1 bad > 288 budget
        traffic(store, -2880, 0, 100, lambda m, n: (m >= -360) & (n % 100 == 0))
    code, data = _gate(tmp_path, db)
    assert code == 1
    assert (data["state"], data["decision"]) == ("frozen", "hold")
    (reason,) = [r for r in data["reasons"] if r["kind"] == "budget_exhausted"]
    assert reason["slo"] == "availability"
    assert "availability: error budget spent" in reason["message"]
    assert reason["budget_remaining"] < 0
    assert reason["since"] is not None
    code, data = _gate(tmp_path, db, "--change", "security")
    assert (code, data["decision"]) == (0, "ship")
    code, _ = _gate(tmp_path, db, "--change", "fix")
    assert code == 0


def test_the_gate_ships_with_budget_left_and_cautions_when_it_runs_low(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db) as store:
        traffic(store, -2880, 0, 100)
    code, data = _gate(tmp_path, db)
    assert (code, data["state"], data["reasons"]) == (0, "ok", [])
    with DuckDBStore(db) as store:  # 230 of 288 allowed bad events: 20% left
        traffic(store, -230, 0, 1, lambda m, n: m < 0, tag="late")
    code, data = _gate(tmp_path, db)
    assert (code, data["state"]) == (0, "caution")
    assert [r["kind"] for r in data["reasons"]] == ["budget_low"]
    assert "availability" in data["reasons"][0]["message"]


def test_a_firing_page_puts_the_gate_in_caution(tmp_path: Path) -> None:
    spec = spec_of(SLOS)
    with DuckDBStore(tmp_path / "e.duckdb") as store:
        traffic(store, -30 * 1440, 10, 10, lambda m, n: (m >= 0) & (n % 5 == 0))
        engine = AlertEngine(spec, store)
        engine.tick(at(5))
        statuses = Evaluator(spec, store).evaluate(at(5))
    decision = decide(spec, statuses, engine.firing(), "feature", at(5))
    assert decision.state == "caution" and decision.ship
    assert any(r.kind == "page_firing" and r.slo == "availability" for r in decision.reasons)


def test_annotations_report_what_each_deploy_cost_and_flag_postmortems(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db) as store:
        traffic(store, -2880, 0, 100, lambda m, n: (m >= -600) & (m < -540))  # 1h outage
    for when, text in ((-610, "v1.2.3"), (-500, "v1.2.4")):
        result = runner.invoke(
            app,
            [
                "annotate",
                "--service",
                "svc",
                "--kind",
                "deploy",
                "--text",
                text,
                "--at",
                at(when).isoformat(),
                "--db",
                str(db),
            ],
        )
        assert result.exit_code == 0, result.output
    spec = spec_of(SLOS)
    with DuckDBStore(db) as store:
        (status,) = Evaluator(spec, store).evaluate(at(0), "availability")
    costs = status.to_dict()["annotations"]
    assert [(c["text"], c["kind"]) for c in costs] == [("v1.2.3", "deploy"), ("v1.2.4", "deploy")]
    # v1.2.3's interval (until v1.2.4) holds the whole outage: 6,000 bad of a
    # 2-day budget of 288: far over the 20% postmortem share
    assert costs[0]["bad"] == 6000 and costs[0]["postmortem"] is True
    assert costs[0]["budget_spent"] == round(6000 / 288, 6)
    assert costs[1]["bad"] == 0 and costs[1]["postmortem"] is False
    code, data = _gate(tmp_path, db)
    assert code == 1  # 6,000 bad events spent the whole budget: frozen
    assert [p["text"] for p in data["postmortems_required"]] == ["v1.2.3"]


def test_annotate_rejects_an_unknown_kind(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "annotate",
            "--service",
            "svc",
            "--kind",
            "party",
            "--text",
            "x",
            "--db",
            str(tmp_path / "e.duckdb"),
        ],
    )
    assert result.exit_code != 0
    assert "kind" in result.output
