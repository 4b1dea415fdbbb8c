"""Windows: empty windows, data gaps, partial buckets, calendar months across DST,
and maintenance exclusions that overlap incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from slokit.core.exclusions import Exclusion, mask
from slokit.core.windows import calendar, from_minute, period_bounds, to_minute
from slokit.engine import evaluate
from slokit.store import DuckDBStore

from conftest import T0, at, event, put, spec_of

BERLIN = ZoneInfo("Europe/Berlin")
AVAILABILITY = "  - name: a\n    objective: 99\n    window: {window}\n    sli: availability\n"


def test_an_empty_window_has_no_data_and_a_full_budget(store: DuckDBStore) -> None:
    [s] = evaluate(spec_of(AVAILABILITY.format(window="1d")), store, at(60))
    assert (s.good, s.valid, s.sli) == (0, 0, None)
    assert s.no_data is True
    assert s.error_budget.remaining == 1.0
    assert all(v is None for v in s.burn_rates.values())
    assert s.exhaustion == {"1h": None, "6h": None}


def test_a_data_gap_leaves_burn_windows_without_traffic_unknown(store: DuckDBStore) -> None:
    # traffic in the first hour only; evaluated 3 hours later
    put(store, [event(m, "ok" if m % 10 else "error") for m in range(60)])
    [s] = evaluate(spec_of(AVAILABILITY.format(window="1d")), store, at(240))
    assert (s.good, s.valid) == (54, 60)
    assert s.burn_rates["5m"] is None and s.burn_rates["1h"] is None
    assert s.burn_rates["6h"] == pytest.approx((6 / 60) / 0.01)


def test_a_mid_minute_evaluation_time_counts_whole_minutes_only(store: DuckDBStore) -> None:
    # `at` 00:00:30 is evaluated as 00:00:00; a failure at 00:00:06 is not yet counted
    put(store, [event(-1), event(0.1, "error")])
    [s] = evaluate(spec_of(AVAILABILITY.format(window="1h")), store, at(0, seconds=30))
    assert (s.good, s.valid) == (1, 1)
    assert s.window_end == T0


def test_a_rolling_window_that_starts_mid_slice_counts_whole_slices_inside_it(
    store: DuckDBStore,
) -> None:
    # 1h slices; evaluated at 00:30 with a 2h window -> window [-1:30, 00:30): only the
    # slice [-1:00, 00:00) lies wholly inside. Slice [-2:00,-1:00) is cut, [00:00,01:00)
    # is not over yet.
    put(store, [event(-100, "error"), event(-50, "ok"), event(10, "error")])
    spec = spec_of(
        "  - name: ts\n    objective: 50\n    window: 2h\n"
        "    budgeting: {method: timeslices, slice: 1h, slice_target: 99}\n"
        "    sli: availability\n"
    )
    [s] = evaluate(spec, store, at(30))
    assert (s.good, s.valid) == (1, 1)


def test_a_timeslices_slo_evaluated_before_all_its_events_has_no_data(
    store: DuckDBStore,
) -> None:
    # every stored event lies after the evaluation time (an evaluation of the past)
    put(store, [event(m, "error") for m in range(700, 703)])
    spec = spec_of(
        "  - name: ts\n    objective: 50\n    window: 2h\n"
        "    budgeting: {method: timeslices, slice: 1h, slice_target: 99}\n"
        "    sli: availability\n"
    )
    [s] = evaluate(spec, store, at(600))
    assert (s.good, s.valid, s.no_data) == (0, 0, True)
    [later] = evaluate(spec, store, at(780))
    assert (later.good, later.valid) == (0, 1)  # the 11:00 slice held the errors


def test_a_calendar_month_across_the_october_dst_change_is_one_hour_longer() -> None:
    # Berlin leaves summer time on 2026-10-25: October has 31 days and one extra hour.
    at_minute = to_minute(datetime(2026, 10, 26, 12, tzinfo=UTC))
    w = calendar(at_minute, "month", BERLIN)
    assert from_minute(w.start) == datetime(2026, 9, 30, 22, tzinfo=UTC)  # Oct 1 00:00 CEST
    assert w.length == (31 * 24 + 1) * 60
    _, end = period_bounds(at_minute, "month", BERLIN)
    assert from_minute(end) == datetime(2026, 10, 31, 23, tzinfo=UTC)  # Nov 1 00:00 CET


def test_a_calendar_month_in_march_loses_the_dst_hour() -> None:
    w = calendar(to_minute(datetime(2026, 3, 15, tzinfo=UTC)), "month", BERLIN)
    assert w.length == (31 * 24 - 1) * 60


@pytest.mark.parametrize(
    ("moment", "unit", "start", "days"),
    [
        pytest.param(
            datetime(2026, 11, 4, 15, tzinfo=UTC),
            "week",
            datetime(2026, 11, 2, tzinfo=UTC),
            7,
            id="ISO week starts Monday",
        ),
        pytest.param(
            datetime(2026, 11, 4, 15, tzinfo=UTC),
            "quarter",
            datetime(2026, 10, 1, tzinfo=UTC),
            92,
            id="Q4 is 92 days",
        ),
        pytest.param(
            datetime(2028, 2, 10, tzinfo=UTC),
            "month",
            datetime(2028, 2, 1, tzinfo=UTC),
            29,
            id="leap February",
        ),
    ],
)
def test_calendar_periods_in_utc(moment: datetime, unit: str, start: datetime, days: int) -> None:
    w = calendar(to_minute(moment), unit, UTC)
    assert from_minute(w.start) == start
    assert w.length == days * 1440


def test_calendar_window_status_uses_the_whole_month_for_exhaustion(store: DuckDBStore) -> None:
    put(store, [event(m, "error" if m < 6 else "ok") for m in range(600)])
    spec = spec_of(AVAILABILITY.format(window="{calendar: month, timezone: UTC}"))
    [s] = evaluate(spec, store, at(600))
    assert s.window_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert (s.good, s.valid) == (594, 600)
    # budget 6 bad of 600 -> exactly spent; the 1h burn is 0, nothing to project
    assert s.error_budget.remaining == pytest.approx(0.0, abs=1e-9)


def test_an_exclusion_removes_an_overlapping_incident_from_good_and_valid(
    store: DuckDBStore,
) -> None:
    # 10 minutes of traffic, an outage in minutes 3-6, maintenance covering minutes 2-5
    put(store, [event(m, "error" if 3 <= m < 7 else "ok") for m in range(10)])
    maintenance = (
        f"    exclusions:\n      - {{start: '{at(2).isoformat()}', end: '{at(5).isoformat()}',"
        " reason: db upgrade}\n"
    )
    spec = spec_of(AVAILABILITY.format(window="1d") + maintenance)
    [s] = evaluate(spec, store, at(10))
    # minutes 2,3,4 excluded: 7 valid left, of which minutes 5 and 6 failed
    assert (s.good, s.valid) == (5, 7)


def test_a_weekly_recurring_exclusion_follows_local_time_across_dst() -> None:
    # Sundays 03:00-03:30 Berlin time: 01:00 UTC in summer, 02:00 UTC in winter
    ex = Exclusion(datetime(2026, 10, 18, 3, 0, tzinfo=BERLIN), 30, "FREQ=WEEKLY;BYDAY=SU")
    lo = to_minute(datetime(2026, 10, 17, tzinfo=UTC))
    hi = to_minute(datetime(2026, 10, 27, tzinfo=UTC))
    ranges = [(from_minute(a), from_minute(b)) for a, b in ex.ranges(lo, hi)]
    assert ranges == [
        (datetime(2026, 10, 18, 1, 0, tzinfo=UTC), datetime(2026, 10, 18, 1, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 2, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
    ]
    assert int(mask([ex], lo, hi).sum()) == 60


def test_exclusion_times_must_be_whole_minutes() -> None:
    from slokit.errors import SpecError

    with pytest.raises(SpecError, match="must be a whole minute"):
        spec_of(
            AVAILABILITY.format(window="1d")
            + "    exclusions: [{start: '2026-11-01T10:00:30Z', duration: 1h}]\n"
        )


def test_burn_windows_look_back_before_a_calendar_period_starts(store: DuckDBStore) -> None:
    # the 1d burn window at 01:00 on the 1st reaches into the previous month
    first = datetime(2026, 12, 1, 1, tzinfo=UTC)
    put(
        store,
        [
            event(
                m,
                "error",
            )
            for m in range(5)
        ]
        + [event((first - T0).total_seconds() / 60 - 120 + m) for m in range(5)],
    )
    spec = spec_of(AVAILABILITY.format(window="{calendar: month, timezone: UTC}"))
    [s] = evaluate(spec, store, first)
    assert s.valid == 0  # nothing in December yet
    assert s.burn_rates["1d"] == pytest.approx(0.0)  # 5 ok requests in November's last hours
    assert s.window_start == first - timedelta(hours=1)
