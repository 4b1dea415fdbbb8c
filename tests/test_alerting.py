"""Burn-rate alerts against the SRE workbook's numbers, on steady synthetic traffic:
detection times, resolve times, low traffic, no-data, and replay == live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from slokit.alerting.engine import AlertEngine, Transition
from slokit.alerting.replay import replay
from slokit.core.alerting import WORKBOOK_ROWS, AlertState, step
from slokit.events.validate import validate
from slokit.spec import Spec
from slokit.store import DuckDBStore

from conftest import T0, at, spec_of

SPEC = """\
  - name: availability
    objective: 99.9
    sli: {availability: {}}
"""

Bad = Callable[[np.ndarray, np.ndarray], np.ndarray]


def traffic(
    store: DuckDBStore,
    first: int,
    last: int,
    per_minute: int,
    bad: Bad | None = None,
    tag: str = "",
) -> None:
    """`per_minute` requests in each minute [first, last) after T0, spread evenly;
    `bad(minute, n)` marks errors (n: the request's number since T0). Event ids are
    `tag` + n."""
    minutes = np.repeat(np.arange(first, last), per_minute)
    offsets = np.tile(np.arange(per_minute) * (60.0 / per_minute), last - first)
    number = np.arange(len(minutes)) + first * per_minute
    error = bad(minutes, number) if bad else np.zeros(len(minutes), dtype=bool)
    seconds = minutes * 60.0 + offsets
    ts = pa.array((T0.timestamp() + seconds) * 1e6, pa.float64()).cast(pa.int64())
    table = pa.table(
        {
            "event_id": pa.array(np.char.add(tag, number.astype(str))),
            "ts": ts.cast(pa.timestamp("us", tz="UTC")),
            "service": pa.array(["svc"] * len(minutes)),
            "outcome": pa.array(np.where(error, "error", "ok")),
        }
    )
    checked = validate(table, "request")
    assert not checked.rejected
    store.append("request", checked.table)


def run(engine: AlertEngine, first: float, last: float, step_s: int = 30) -> list[Transition]:
    out: list[Transition] = []
    now = at(first)
    while now <= at(last):
        out += engine.tick(now).transitions
        now += timedelta(seconds=step_s)
    return out


def fired(ts: list[Transition], severity: str) -> list[datetime]:
    return [t.at for t in ts if t.action == "firing" and t.alert.severity == severity]


def resolved(ts: list[Transition], severity: str) -> list[datetime]:
    return [t.at for t in ts if t.action == "resolved" and t.alert.severity == severity]


def minutes_after(moment: datetime, origin: float) -> float:
    return (moment - at(origin)).total_seconds() / 60


def test_the_workbook_rows_give_its_thresholds_for_30_days_and_scale_with_the_window() -> None:
    assert [round(r.threshold(43200), 6) for r in WORKBOOK_ROWS] == [14.4, 6.0, 3.0, 1.0]
    assert [(r.severity, r.long, r.short) for r in WORKBOOK_ROWS] == [
        ("page", 60, 5),
        ("page", 360, 30),
        ("ticket", 1440, 120),
        ("ticket", 4320, 360),
    ]
    # 28 days: 2% of the budget in 1h is burn 13.44; 7 days: 3.36
    assert round(WORKBOOK_ROWS[0].threshold(28 * 1440), 6) == 13.44
    assert round(WORKBOOK_ROWS[0].threshold(7 * 1440), 6) == 3.36


def test_the_state_machine_waits_for_its_for_duration_and_resolves() -> None:
    s0 = AlertState()
    s1, a1 = step(s0, True, at(0), for_minutes=5)
    assert (s1.state, a1) == ("pending", None)
    s2, a2 = step(s1, True, at(4), for_minutes=5)
    assert (s2.state, a2) == ("pending", None)
    s3, a3 = step(s2, True, at(5), for_minutes=5)
    assert (s3.state, a3, s3.fired_at) == ("firing", "firing", at(5))
    s4, a4 = step(s3, True, at(6), for_minutes=5)
    assert (s4, a4) == (s3, None)  # no second page while it holds
    s5, a5 = step(s4, False, at(7))
    assert (s5.state, a5, s5.resolved_at) == ("resolved", "resolved", at(7))
    # a pending alert that stops holding never fires
    p, _ = step(s0, True, at(0), for_minutes=5)
    q, action = step(p, False, at(1), for_minutes=5)
    assert (q.state, action) == ("inactive", None)


def test_a_full_outage_pages_within_two_minutes_and_resolves_when_the_30m_window_clears(
    store: DuckDBStore,
) -> None:
    # 100 requests a minute for a day, then a 20-minute outage at minute 0
    traffic(store, -1440, 120, 100, lambda m, n: (m >= 0) & (m < 20))
    engine = AlertEngine(spec_of(SPEC), store)
    ts = run(engine, -5, 70)
    pages = fired(ts, "page")
    assert len(pages) == 1  # one page, not one per row or per tick
    # workbook detection time 0.001 x 60 min x 14.4 = 52 s, plus a whole minute bucket
    assert 0 < minutes_after(pages[0], 0) <= 2
    # resolves once no page row holds: the 1h/5m row clears 5 minutes after recovery,
    # the 6h/30m row when the outage leaves the 30-minute window, 30 minutes after it
    (done,) = resolved(ts, "page")
    assert 49 <= minutes_after(done, 0) <= 51
    page = next(t for t in ts if t.action == "firing" and t.alert.severity == "page")
    assert page.alert.detail["windows"] == ["1h", "5m"]
    assert page.alert.detail["threshold"] == 14.4
    assert page.notification.summary.startswith("svc/availability: burn rate ")


def test_a_steady_half_percent_error_ratio_tickets_after_14_4_hours_and_never_pages(
    store: DuckDBStore,
) -> None:
    # 3 clean days (the 3d window full), then 0.5% errors: one request in 200
    traffic(store, -3 * 1440, 0, 100)
    traffic(store, 0, 15 * 60, 100, lambda m, n: n % 200 == 0)
    engine = AlertEngine(spec_of(SPEC), store)
    # burn 5: the 1d row crosses 3 when 60% of the day is bad, 0.6 x 24h = 14.4h
    coarse = run(engine, -10, 14 * 60, step_s=600)
    assert fired(coarse, "page") == [] and fired(coarse, "ticket") == []
    fine = run(engine, 14 * 60 + 0.5, 15 * 60)
    assert fired(fine, "page") == []
    (ticket,) = fired(fine, "ticket")
    assert abs(minutes_after(ticket, 0) - 14.4 * 60) <= 2


def test_a_burn_of_0_9_for_a_month_raises_nothing(store: DuckDBStore) -> None:
    # 10 requests a minute for 31 days, 0.09% of them errors, evenly spread
    traffic(store, -31 * 1440, 0, 10, lambda m, n: n % 1111 == 0)
    spec = spec_of(SPEC)
    report = replay(spec, store, at(-30 * 1440), at(0), step_seconds=600)
    assert report.ticks > 4000
    assert report.transitions == []
    status = AlertEngine(spec, store).tick(at(0)).statuses[0]
    assert 0.85 < (status.burn_rates["window"] or 0) < 0.95


def test_a_few_failures_at_night_below_the_minimum_do_not_page(store: DuckDBStore) -> None:
    # one request every 5 minutes all night; 3 of them fail within half an hour
    night = np.arange(-8 * 60, 120, 5)
    records = pa.table(
        {
            "event_id": pa.array([f"n{m}" for m in night]),
            "ts": pa.array([at(float(m)) for m in night], pa.timestamp("us", tz="UTC")),
            "service": pa.array(["svc"] * len(night)),
            "outcome": pa.array(["error" if 0 <= m < 30 and m % 10 == 0 else "ok" for m in night]),
        }
    )
    store.append("request", validate(records, "request").table)
    engine = AlertEngine(spec_of(SPEC), store)
    ts = run(engine, -5, 90, step_s=60)
    assert fired(ts, "page") == []
    # the same failures with the minimum lowered to 1 would page: the minimum is the cause
    low = spec_of(SPEC.replace("    sli:", "    alerting: {min_events: 1}\n    sli:"))
    assert fired(run(AlertEngine(low, store), -5, 90, step_s=60), "page")


def test_no_data_fires_when_traffic_stops_and_resolves_when_it_returns(
    store: DuckDBStore,
) -> None:
    traffic(store, -600, 0, 10)  # traffic stops at minute 0 ...
    traffic(store, 90, 100, 10)  # ... and comes back at minute 90
    spec = spec_of(SPEC.replace("    sli:", "    alerting: {no_data: 30m}\n    sli:"))
    ts = run(AlertEngine(spec, store), -5, 95, step_s=60)
    quiet = [t for t in ts if t.alert.reason == "no_data"]
    assert [(t.action, round(minutes_after(t.at, 0))) for t in quiet] == [
        ("firing", 30),
        ("resolved", 91),
    ]
    assert quiet[0].alert.severity == "ticket"


def test_alerting_none_turns_an_slo_off(store: DuckDBStore) -> None:
    traffic(store, -1440, 30, 100, lambda m, n: m >= 0)
    spec = spec_of(SPEC.replace("    sli:", "    alerting: {policy: none}\n    sli:"))
    assert run(AlertEngine(spec, store), 0, 20, step_s=60) == []


def test_custom_rows_override_the_default_policy(store: DuckDBStore) -> None:
    traffic(store, -1440, 30, 100, lambda m, n: (m >= 0) & (n % 50 == 0))  # 2%: burn 20
    rows = """    alerting:
      policy:
        - {severity: sev1, long: 10m, short: 2m, burn: 19, for: 3m}
"""
    spec = spec_of(SPEC.replace("    sli:", rows + "    sli:"))
    ts = run(AlertEngine(spec, store), 0, 25, step_s=60)
    (when,) = fired(ts, "sev1")
    # the 10m window passes burn 19 after 10 minutes of errors, then `for` waits 3m
    assert round(minutes_after(when, 0)) == 13
    assert fired(ts, "page") == []


def test_groups_alert_separately(store: DuckDBStore) -> None:
    spec = spec_of(SPEC.replace("    sli:", "    group_by: [tier]\n    sli:"))
    for tier, bad in (("gold", False), ("bronze", True)):
        n = np.arange(-600, 30)
        table = pa.table(
            {
                "event_id": pa.array([f"{tier}{m}-{k}" for m in n for k in range(20)]),
                "ts": pa.array(
                    [at(float(m), seconds=k * 3) for m in n for k in range(20)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "service": pa.array(["svc"] * (len(n) * 20)),
                "tier": pa.array([tier] * (len(n) * 20)),
                "outcome": pa.array(
                    ["error" if bad and m >= 0 else "ok" for m in n for _ in range(20)]
                ),
            }
        )
        store.append("request", validate(table, "request").table)
    ts = run(AlertEngine(spec, store), 0, 10, step_s=60)
    assert {t.alert.group["tier"] for t in ts if t.action == "firing"} == {"bronze"}


def test_replay_reproduces_the_live_evaluator(store: DuckDBStore, tmp_path: Path) -> None:
    # a 20-minute outage, then a 3-minute one
    traffic(store, -1440, 180, 100, lambda m, n: ((m >= 0) & (m < 20)) | ((m >= 100) & (m < 103)))
    spec: Spec = spec_of(SPEC)
    live = run(AlertEngine(spec, store), -5, 170)
    report = replay(spec, store, at(-5), at(170), step_seconds=30)
    assert len(live) >= 4
    shape = [(t.at, t.action, t.alert.key, t.alert.detail) for t in live]
    assert [(t.at, t.action, t.alert.key, t.alert.detail) for t in report.transitions] == shape
    # each episode reports the budget it had consumed when it fired
    first = report.episodes[0]
    assert first.severity == "page" and first.budget_consumed is not None
    # fired at minute 1: 100 bad of 144,100 requests, a budget of 144.1 bad ones
    assert first.budget_consumed == round(100 / 144.1, 6)


@pytest.mark.parametrize("minutes", [0, 30])
def test_a_firing_alert_survives_a_restart_without_a_second_page(
    tmp_path: Path, minutes: int
) -> None:
    db = tmp_path / "restart.duckdb"
    spec = spec_of(SPEC)
    with DuckDBStore(db) as store:
        traffic(store, -1440, 120, 100, lambda m, n: (m >= 0) & (m < 20))
        engine = AlertEngine.from_store(spec, store)
        first = run(engine, 0, 5)
        assert fired(first, "page")
        store.put_alerts(
            [a.to_row() for a in engine.alerts.values()], [t.to_log_row() for t in first]
        )
    with DuckDBStore(db) as store:  # the server restarts
        engine = AlertEngine.from_store(spec, store)
        assert [a.severity for a in engine.firing()] == ["page", "ticket"]
        after = run(engine, 5.5 + minutes, 60)
        assert [t for t in after if t.action == "firing"] == []  # no second page
        assert len(resolved(after, "page")) == 1  # but the resolve still goes out
