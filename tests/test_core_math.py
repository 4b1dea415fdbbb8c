"""The SLO math against hand-computed cases from the Google SRE workbook."""

from __future__ import annotations

import numpy as np
import pytest

from slokit.core.assess import assess
from slokit.core.budget import (
    budget_fraction_spent,
    burn_rate,
    error_budget,
    minutes_to_exhaustion,
)
from slokit.core.durations import format_minutes, parse_minutes
from slokit.core.intervals import wilson
from slokit.core.series import Series
from slokit.core.timeslices import any_bad, fold, fold_throughput
from slokit.core.windows import rolling

DAY = 1440
MONTH = 30 * DAY


def test_a_million_requests_at_99_9_give_a_budget_of_1000_bad_events() -> None:
    b = error_budget(good=1_000_000, valid=1_000_000, objective=0.999)
    assert b.total == pytest.approx(1000)
    assert b.remaining == pytest.approx(1.0)


def test_an_error_ratio_of_1_44_percent_at_99_9_is_a_burn_rate_of_14_4() -> None:
    assert burn_rate(good=98_560, valid=100_000, objective=0.999) == pytest.approx(14.4)


def test_at_burn_14_4_a_30_day_budget_lasts_2_08_days() -> None:
    minutes = minutes_to_exhaustion(remaining=1.0, window_minutes=MONTH, burn=14.4)
    assert minutes is not None
    assert minutes / DAY == pytest.approx(30 / 14.4)
    assert round(minutes / DAY, 2) == 2.08


def test_2_percent_of_a_30_day_budget_is_spent_by_one_hour_at_burn_14_4() -> None:
    assert budget_fraction_spent(14.4, 60, MONTH) == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("good", "valid", "consumed", "remaining", "remaining_events"),
    [
        pytest.param(999_500, 1_000_000, 0.5, 0.5, 500, id="half the budget spent"),
        pytest.param(998_000, 1_000_000, 2.0, -1.0, -1000, id="overspent budget goes negative"),
        pytest.param(0, 0, 0.0, 1.0, 0, id="no events spend nothing"),
    ],
)
def test_error_budget_consumption(
    good: float, valid: float, consumed: float, remaining: float, remaining_events: float
) -> None:
    b = error_budget(good, valid, 0.999)
    assert b.consumed == pytest.approx(consumed)
    assert b.remaining == pytest.approx(remaining)
    assert b.remaining_events == pytest.approx(remaining_events, abs=1e-6)


def test_burn_rate_of_an_empty_window_is_unknown_not_zero() -> None:
    assert burn_rate(0, 0, 0.999) is None


def test_objective_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match=r"objective must be a fraction in \(0, 1\), got 99.9"):
        error_budget(1, 1, 99.9)


def test_exhaustion_is_none_when_not_burning_or_already_spent() -> None:
    assert minutes_to_exhaustion(1.0, MONTH, 0.0) is None
    assert minutes_to_exhaustion(-0.5, MONTH, 3.0) is None
    assert minutes_to_exhaustion(0.5, MONTH, None) is None


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("5m", 5), ("1h", 60), ("30d", MONTH), ("2w", 2 * 7 * DAY)],
)
def test_durations_parse(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0m", "5s", "1.5h", "", "d"])
def test_bad_durations_say_what_is_valid(text: str) -> None:
    with pytest.raises(ValueError, match="like 5m, 1h, 7d, 2w"):
        parse_minutes(text)


def test_durations_format_exactly() -> None:
    assert [format_minutes(m) for m in (MONTH, 90, 120, 7)] == ["30d", "90m", "2h", "7m"]


def test_wilson_interval_matches_the_textbook_value() -> None:
    # 45 of 50: Wilson 95% interval (0.7864, 0.9565), e.g. Newcombe 1998 method 3.
    low, high = wilson(45, 50)  # type: ignore[misc]
    assert low == pytest.approx(0.7864, abs=1e-4)
    assert high == pytest.approx(0.9565, abs=1e-4)
    assert wilson(0, 0) is None


def _series(good: list[float], valid: list[float], start: int = 0, step: int = 1) -> Series:
    return Series(start, step, np.array(good, float), np.array(valid, float))


def test_series_window_sums_only_whole_buckets() -> None:
    s = _series([1, 2, 3, 4], [1, 2, 3, 4], start=0, step=5)  # buckets at 0,5,10,15
    assert s.window(0, 20) == (10.0, 10.0)
    assert s.window(3, 20) == (9.0, 9.0)  # bucket [0,5) is cut, so left out
    assert s.window(5, 14) == (2.0, 2.0)  # bucket [10,15) is cut at 14
    assert s.window(-100, -50) == (0.0, 0.0)


def test_vectorised_windows_agree_with_single_windows() -> None:
    rng = np.random.default_rng(1)
    s = _series(list(rng.integers(0, 5, 100)), list(rng.integers(5, 10, 100)), start=1000)
    lo = np.array([990, 1000, 1010, 1050, 1099, 1200])
    hi = lo + 37
    good, valid = s.windows(lo, hi)
    for i in range(len(lo)):
        assert (good[i], valid[i]) == s.window(int(lo[i]), int(hi[i]))


def test_timeslices_fold_judges_each_slice_against_the_slice_target() -> None:
    # three 2-minute slices: 10/10 good, 9/10 (90%), no data
    s = _series([5, 5, 4, 5, 0, 0], [5, 5, 5, 5, 0, 0])
    folded = fold(s, 2, 0.95)
    assert folded.good.tolist() == [1.0, 0.0, 0.0]
    assert folded.valid.tolist() == [1.0, 1.0, 0.0]
    ratio = fold(s, 2, 0.95, ratio=True)
    assert ratio.good.tolist() == [1.0, 0.9, 0.0]


def test_throughput_slice_is_good_when_rate_met_or_all_offered_load_served() -> None:
    # 1-minute slices, target 1/s = 60 per minute
    served = _series([60, 30, 30, 0], [60, 30, 40, 0])
    failed = np.array([0.0, 0.0, 10.0, 0.0])
    folded = fold_throughput(served, failed, 1, 1.0)
    assert folded.good.tolist() == [1.0, 1.0, 0.0, 1.0]


def test_composite_slice_is_bad_when_any_member_slice_is_bad() -> None:
    a = _series([1, 1, 0, 0], [1, 1, 1, 0])
    b = _series([1, 0, 1, 0], [1, 1, 1, 1])
    c = any_bad([a, b])
    assert c.good.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert c.valid.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_assess_a_steady_burn_of_14_4_over_a_30_day_window() -> None:
    # 100 requests a minute for 30 days; the last hour fails 1.44% of requests.
    n = MONTH
    valid = np.full(n, 100.0)
    good = valid.copy()
    good[-60:] = 100 - 1.44
    a = assess(Series(0, 1, good, valid), rolling(n, MONTH), 0.999)
    assert a.burn_rates["1h"] == pytest.approx(14.4)
    assert a.burn_rates["5m"] == pytest.approx(14.4)
    assert a.burn_rates["2h"] == pytest.approx(7.2)
    assert a.budget.consumed == pytest.approx(0.02)
    assert a.exhaustion_minutes["1h"] == pytest.approx(0.98 * MONTH / 14.4)
    assert a.timeline_remaining[-1] == pytest.approx(0.98)
    assert a.timeline_minutes[-1] == n
