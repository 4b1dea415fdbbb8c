"""The demo end to end: generated traffic in a real store, the demo spec evaluated,
and each scripted incident visible where it should be."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from slokit.demo.run import DemoResult, run_demo
from slokit.engine import Evaluator, Status
from slokit.spec import load
from slokit.store import DuckDBStore

END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoResult, Evaluator]]:
    tmp = tmp_path_factory.mktemp("demo")
    result = run_demo(tmp / "demo.duckdb", tmp / "demo.yaml", end=END, rate=20, seed=3)
    with DuckDBStore(tmp / "demo.duckdb", read_only=True) as store:
        yield result, Evaluator(load(tmp / "demo.yaml"), store)


def incident(result: DemoResult, kind: str) -> tuple[datetime, datetime]:
    [inc] = [i for i in result.incidents if i.kind == kind]
    return inc.start, inc.end


def bad(statuses: list[Status]) -> float:
    return sum(s.valid - s.good for s in statuses)


def test_the_demo_evaluates_every_slo_and_group(demo: tuple[DemoResult, Evaluator]) -> None:
    result, _ = demo
    slos = {s.slo for s in result.statuses}
    assert len(slos) == 12
    assert {tuple(s.group.values()) for s in result.statuses if s.slo == "availability"} == {
        ("gold",),
        ("silver",),
        ("bronze",),
    }
    assert all(not s.no_data for s in result.statuses)


def test_the_outage_shows_as_its_failed_requests_and_a_200x_burn(
    demo: tuple[DemoResult, Evaluator],
) -> None:
    result, evaluator = demo
    start, end = incident(result, "outage")
    assert end - start == timedelta(minutes=20)
    in_outage = evaluator.store.query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE outcome = 'error') AS failed "
        "FROM request_events WHERE ts >= $a AND ts < $b",
        {"a": start, "b": end},
    ).to_pylist()[0]
    assert in_outage["n"] == in_outage["failed"] > 0
    before = evaluator.evaluate(start, "availability")
    after = evaluator.evaluate(end, "availability")
    # the window moved 20 minutes: the outage's requests are new bad events (the
    # minutes that left the window at the far end had a handful of normal failures)
    assert bad(after) - bad(before) == pytest.approx(in_outage["n"], abs=5)
    for s in after:  # 100% errors at a 99.5% objective burn 1 / 0.005 = 200x
        assert s.burn_rates["5m"] == pytest.approx(200.0)
        assert s.burn_rates["1h"] is not None and s.burn_rates["1h"] > 60


def test_the_quality_regression_moves_the_quality_sli(demo: tuple[DemoResult, Evaluator]) -> None:
    result, evaluator = demo
    start, end = incident(result, "quality_regression")
    [before] = evaluator.evaluate(start, "rag-faithfulness")
    [after] = evaluator.evaluate(end, "rag-faithfulness")
    assert before.burn_rates["1d"] is not None and before.burn_rates["1d"] < 1.0
    assert after.burn_rates["1d"] is not None and after.burn_rates["1d"] > 2.0
    assert after.sli is not None and before.sli is not None and after.sli < before.sli - 2


def test_the_cost_spike_moves_the_cost_sli(demo: tuple[DemoResult, Evaluator]) -> None:
    result, evaluator = demo
    start, end = incident(result, "cost_spike")
    [before] = evaluator.evaluate(start, "completion-unit-cost")
    [during] = evaluator.evaluate(start + (end - start) / 2, "completion-unit-cost")
    assert before.burn_rates["6h"] is not None and before.burn_rates["6h"] < 1.0
    # gpt-4o costs several times the target: overspend many times the 20% tolerance
    assert during.burn_rates["6h"] is not None and during.burn_rates["6h"] > 10
    assert during.error_budget.unit == "usd"


def test_the_latency_regression_burns_the_chat_ttft_budget(
    demo: tuple[DemoResult, Evaluator],
) -> None:
    result, evaluator = demo
    start, end = incident(result, "latency_regression")
    during = evaluator.evaluate(end, "chat-ttft")
    assert all(s.burn_rates["6h"] is not None and s.burn_rates["6h"] > 5 for s in during)
    deploys = evaluator.store.annotations("llm-api").to_pylist()
    assert any(a["kind"] == "deploy" and a["ts"] == start for a in deploys)


def test_the_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = run_demo(tmp_path / "a.duckdb", tmp_path / "a.yaml", end=END, days=7, rate=5, seed=11)
    b = run_demo(tmp_path / "b.duckdb", tmp_path / "b.yaml", end=END, days=7, rate=5, seed=11)
    assert [s.to_dict() for s in a.statuses] == [s.to_dict() for s in b.statuses]
    assert a.requests == b.requests
