"""SLA measurement methods and credit ladders against hand-computed months.

Expected uptimes are exact fractions (the arithmetic is in each comment); the code
must return the correctly rounded float of each, so they compare with `==`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from slokit.core.sla import (
    Credit,
    Ladder,
    Measurement,
    MinuteCounts,
    Period,
    Tier,
    available_minutes,
    check_ladder,
    credit_for,
    downtime_minutes,
    interval_error_rate,
    latency_attainment,
    local_days,
    month_minutes,
    request_based,
)
from slokit.core.windows import to_minute

BERLIN = ZoneInfo("Europe/Berlin")
DAY = 1440
LADDER = [Tier(99.9, 10), Tier(99.0, 25), Tier(95.0, 100)]


def minute(year: int, month: int, day: int, hour: int = 0, mins: int = 0) -> int:
    """Epoch minute of a UTC wall time."""
    return to_minute(datetime(year, month, day, hour, mins, tzinfo=UTC))


class Month:
    """A billing month of traffic, edited range by range; ranges are clipped to the
    month, as the store query is."""

    def __init__(self, start: int, end: int, rpm: float = 10.0) -> None:
        self.start, self.end = start, end
        self.total = np.full(end - start, rpm)
        self.failed = np.zeros(end - start)
        self.slow = np.zeros(end - start)
        self.excluded = np.zeros(end - start, dtype=bool)

    @classmethod
    def of(cls, year: int, month: int, tz: tzinfo = UTC, rpm: float = 10.0) -> Month:
        return cls(*month_minutes(year, month, tz), rpm=rpm)

    def _at(self, a: int, b: int) -> slice:
        return slice(max(a, self.start) - self.start, max(min(b, self.end) - self.start, 0))

    def traffic(self, a: int, b: int, rpm: float) -> Month:
        self.total[self._at(a, b)] = rpm
        return self

    def fail(self, a: int, b: int, per_minute: float | None = None) -> Month:
        s = self._at(a, b)
        self.failed[s] = self.total[s] if per_minute is None else per_minute
        return self

    def exclude(self, a: int, b: int) -> Month:
        self.excluded[self._at(a, b)] = True
        return self

    def counts(self) -> MinuteCounts:
        return MinuteCounts(self.start, self.total, self.failed, self.slow, self.excluded)


def tiny(
    total: Sequence[float], failed: Sequence[float], excluded: Sequence[int] = ()
) -> MinuteCounts:
    """A hand-sized 'month' starting at epoch minute 0."""
    mask = np.zeros(len(total), dtype=bool)
    mask[list(excluded)] = True
    t = np.asarray(total, dtype=float)
    return MinuteCounts(0, t, np.asarray(failed, dtype=float), np.zeros_like(t), mask)


# -- billing months -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "month", "tz", "first", "minutes"),
    [
        pytest.param(2026, 2, "UTC", minute(2026, 2, 1), 28 * DAY, id="February 2026 has 28 days"),
        pytest.param(2026, 4, "UTC", minute(2026, 4, 1), 30 * DAY, id="April has 30 days"),
        pytest.param(2026, 10, "UTC", minute(2026, 10, 1), 31 * DAY, id="October has 31 days"),
        pytest.param(2026, 12, "UTC", minute(2026, 12, 1), 31 * DAY, id="December ends next year"),
        # Oct 1 00:00 CEST = Sep 30 22:00Z; Nov 1 00:00 CET = Oct 31 23:00Z
        pytest.param(
            2026, 10, "Europe/Berlin", minute(2026, 9, 30, 22), 31 * DAY + 60,
            id="Berlin October gains the DST hour",
        ),
        # Mar 1 00:00 CET = Feb 28 23:00Z; Apr 1 00:00 CEST = Mar 31 22:00Z
        pytest.param(
            2026, 3, "Europe/Berlin", minute(2026, 2, 28, 23), 31 * DAY - 60,
            id="Berlin March loses the DST hour",
        ),
    ],
)  # fmt: skip
def test_month_minutes(year: int, month: int, tz: str, first: int, minutes: int) -> None:
    assert month_minutes(year, month, ZoneInfo(tz)) == (first, first + minutes)


def test_a_month_outside_1_to_12_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^month must be 1\.\.12, got 13$"):
        month_minutes(2026, 13, BERLIN)


def test_local_days_of_berlin_october_include_one_25_hour_day() -> None:
    start, end = month_minutes(2026, 10, BERLIN)
    days = local_days(start, end, BERLIN)
    lengths = np.diff(np.append(days, end))
    assert len(days) == 31 and days[0] == start
    # Oct 25 (the 25th day, index 24) runs 00:00 CEST -> 00:00 CET: 25 hours
    assert lengths[24] == 1500
    assert sorted(set(lengths.tolist())) == [1440, 1500]


# -- interval_error_rate (AWS style) --------------------------------------------------


def test_one_wholly_failed_interval_in_a_30_day_month() -> None:
    m = Month.of(2026, 4)  # 43,200 minutes = 8,640 five-minute intervals
    a = minute(2026, 4, 10, 3)
    r = interval_error_rate(m.fail(a, a + 5).counts())
    # 100 − (1 + 8,639 × 0) / 8,640 × 100
    assert r.uptime == float(100 - Fraction(100, 8640))
    assert (r.good, r.total, r.unit) == (8639, 8640, "intervals")
    assert r.periods == [Period(a, 5, 50, 50, 1.0, 0)]


def test_intervals_without_requests_count_as_zero_percent_errors() -> None:
    # 15 minutes = 3 intervals; 1 of 4 requests fails in the first, the others are empty
    c = tiny([4, 0, 0, 0, 0] + [0] * 10, [1, 0, 0, 0, 0] + [0] * 10)
    r = interval_error_rate(c)
    # 100 − (25% + 0% + 0%) / 3
    assert r.uptime == float(100 - Fraction(25, 3))
    assert r.total == 3


def test_the_last_interval_is_shorter_when_the_month_is_not_a_multiple() -> None:
    # 12 minutes -> intervals of 5, 5 and 2 minutes; the 2-minute one fails entirely
    c = tiny([1] * 12, [0] * 10 + [1, 1])
    r = interval_error_rate(c)
    assert r.uptime == float(100 - Fraction(100, 3))  # 100 − (0 + 0 + 100%) / 3
    assert r.periods == [Period(10, 2, 2, 2, 1.0, 0)]


def test_excluded_minutes_drop_their_requests_and_wholly_excluded_intervals() -> None:
    # interval 0: minutes 0-1 excluded and failing, minutes 2-4 at 1 of 10 failed
    # interval 1: clean; interval 2: wholly excluded and failing
    c = tiny([10] * 15, [10, 10, 1, 1, 1] + [0] * 5 + [10] * 5, excluded=[0, 1, *range(10, 15)])
    r = interval_error_rate(c)
    # interval 0 rate = 3 / 30 = 10%; mean over the 2 kept intervals = 5% -> 95%
    assert r.uptime == 95.0
    assert (r.total, r.left_out) == (2, 1)
    assert r.periods == [Period(0, 5, 30, 3, 0.1, 2)]


# -- the same month through every method ----------------------------------------------

APRIL = month_minutes(2026, 4, UTC)
OUTAGE = minute(2026, 4, 10, 10)  # 10:00-10:30 all requests fail
MAINTENANCE = OUTAGE + 20  # 10:20-11:00 announced maintenance: overlaps 10 outage minutes


@pytest.mark.parametrize(
    ("method", "uptime"),
    [
        # 10:00-10:20 = 4 failed intervals; 10:20-11:00 = 8 wholly excluded intervals dropped
        # 100 − 4 × 100% / (8,640 − 8)
        pytest.param(interval_error_rate, 100 - Fraction(400, 8632), id="interval error rate"),
        # 20 down minutes over all 43,200 minutes; excluded minutes count as up
        pytest.param(downtime_minutes, 100 - Fraction(2000, 43200), id="downtime minutes"),
        # maximum available = 43,200 − 40 excluded; 20 down -> 43,140 / 43,160
        pytest.param(available_minutes, 100 * Fraction(43140, 43160), id="available minutes"),
        # 432,000 requests − 400 in excluded minutes = 431,600; 200 failed
        pytest.param(request_based, 100 * Fraction(431400, 431600), id="request based"),
    ],
)
def test_maintenance_overlapping_an_outage_does_not_count(
    method: Callable[[MinuteCounts], Measurement], uptime: Fraction
) -> None:
    m = Month(*APRIL).fail(OUTAGE, OUTAGE + 30).exclude(MAINTENANCE, MAINTENANCE + 40)
    assert method(m.counts()).uptime == float(uptime)


def test_an_outage_crossing_midnight_at_month_end_counts_only_inside_the_month() -> None:
    # 22:50Z-23:10Z on Oct 31 = 23:50-00:10 in Berlin (CET): half in October, half in
    # November; in UTC all of it is in October.
    a, b = minute(2026, 10, 31, 22, 50), minute(2026, 10, 31, 23, 10)
    october = interval_error_rate(
        Month.of(2026, 10, BERLIN).fail(a, b).counts(),
        day_starts=local_days(*month_minutes(2026, 10, BERLIN), BERLIN),
    )
    # 44,700 minutes = 8,940 intervals; 22:50 and 22:55 fail
    assert october.uptime == float(100 - Fraction(200, 8940))
    assert [p.start for p in october.periods] == [a, a + 5]
    # Oct 31 local has 1,440 minutes = 288 intervals, 2 of them failed
    assert october.daily[-1] == (minute(2026, 10, 30, 23), float(100 - Fraction(200, 288)))
    november = interval_error_rate(Month.of(2026, 11, BERLIN).fail(a, b).counts())
    assert november.uptime == float(100 - Fraction(200, 8640))  # 23:00 and 23:05
    utc = interval_error_rate(Month.of(2026, 10).fail(a, b).counts())
    assert utc.uptime == float(100 - Fraction(400, 8928))  # all 4 intervals in Oct UTC


def test_a_failed_interval_on_the_25_hour_day_weighs_by_that_days_300_intervals() -> None:
    start, end = month_minutes(2026, 10, BERLIN)
    a = minute(2026, 10, 25, 12)
    r = interval_error_rate(
        Month(start, end).fail(a, a + 5).counts(), day_starts=local_days(start, end, BERLIN)
    )
    assert r.uptime == float(100 - Fraction(100, 8940))  # 44,700 / 5 intervals
    assert len(r.daily) == 31
    assert r.daily[24] == (minute(2026, 10, 24, 22), float(100 - Fraction(100, 300)))
    assert [u for _, u in r.daily].count(100.0) == 30


def test_without_day_starts_days_are_1440_minutes_from_the_month_start() -> None:
    r = request_based(Month.of(2026, 10, BERLIN).counts())
    # 44,700 = 31 × 1,440 + 60: a 32nd "day" of one hour
    assert [d for d, _ in r.daily][-2:] == [
        minute(2026, 9, 30, 22) + 30 * DAY,
        minute(2026, 9, 30, 22) + 31 * DAY,
    ]


def test_march_in_berlin_is_8916_intervals() -> None:
    m = Month.of(2026, 3, BERLIN)
    a = minute(2026, 3, 29, 12)
    assert interval_error_rate(m.fail(a, a + 5).counts()).uptime == float(
        100 - Fraction(100, 8916)  # (31 × 1,440 − 60) / 5
    )


# -- downtime_minutes (Google style) and available_minutes (Azure style) --------------


@pytest.mark.parametrize(
    ("failed", "down"),
    [
        pytest.param(1, 0, id="exactly 5% is not down"),
        pytest.param(2, 1, id="10% is down"),
        pytest.param(0, 0, id="no failures is up"),
    ],
)
def test_a_minute_is_down_only_above_the_threshold(failed: float, down: int) -> None:
    r = downtime_minutes(tiny([20, 0, 20, 20], [failed, 0, 0, 0]))
    assert (r.good, r.total, len(r.periods)) == (4 - down, 4, down)


def test_five_minute_periods_pool_their_requests_before_the_threshold() -> None:
    # 50 requests per period; one minute of 10 failing = 20% (down), 1 failing = 2% (up)
    c = tiny([10] * 10, [10, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    r = downtime_minutes(c, period=5)
    assert r.uptime == 50.0
    assert r.periods == [Period(0, 5, 50, 10, 0.2, 0)]


def test_google_counts_excluded_time_as_up_azure_leaves_it_out() -> None:
    # minutes 0-3 fail; minutes 2-3 are excluded -> 2 down minutes of 10
    c = tiny([10] * 10, [10] * 4 + [0] * 6, excluded=[2, 3])
    assert downtime_minutes(c).uptime == 80.0  # (10 − 2) / 10
    assert available_minutes(c).uptime == 75.0  # (8 − 2) / (10 − 2)


def test_a_28_day_month_in_five_minute_periods() -> None:
    m = Month.of(2026, 2)
    a = minute(2026, 2, 14, 6, 1)  # 06:01-06:03 crosses no period boundary
    r = downtime_minutes(m.fail(a, a + 2).counts(), period=5)
    assert r.uptime == float(100 - Fraction(100, 8064))  # 40,320 / 5 periods, 1 down


def test_a_31_day_month_in_available_minutes() -> None:
    m = Month.of(2026, 10)
    a = minute(2026, 10, 5)
    r = available_minutes(m.fail(a, a + 3).counts())
    assert r.uptime == float(100 * Fraction(44637, 44640))
    assert len(r.periods) == 3 and r.periods[0].minutes == 1


# -- request_based and latency_attainment ---------------------------------------------


def test_request_based_is_100_percent_without_requests() -> None:
    r = request_based(tiny([0, 0], [0, 0]))
    assert (r.uptime, r.total) == (100.0, 0.0)


def test_latency_attainment_per_requests() -> None:
    c = tiny([100] * 10, [0] * 10)
    c.slow[:3] = 10  # 30 slow of 1,000
    assert latency_attainment(c).uptime == 97.0


def test_latency_attainment_per_intervals_counts_non_empty_non_excluded_intervals() -> None:
    # 500 requests per busy interval: 5 slow = 99.0% met (good, boundary), 6 slow = 98.8%
    total = [100] * 10 + [0] * 5 + [100] * 5
    c = tiny(total, [0] * 20, excluded=list(range(15, 20)))
    c.slow[0], c.slow[5], c.slow[15] = 5, 6, 100
    r = latency_attainment(c, per="intervals", interval=5, target=0.99)
    assert (r.good, r.total, r.left_out, r.uptime) == (1, 2, 2, 50.0)
    assert r.periods == [Period(5, 5, 500, 6, 0.012, 0)]


def test_latency_attainment_refuses_an_unknown_per() -> None:
    with pytest.raises(ValueError, match="per must be 'requests' or 'intervals', got 'minutes'"):
        latency_attainment(tiny([1], [0]), per="minutes")


# -- methods disagree on the same traffic ---------------------------------------------

OUTAGE_3AM = minute(2026, 4, 10, 3)


@pytest.mark.parametrize(
    ("rpm", "method", "uptime"),
    [
        # traffic weighs nothing in time-based methods: 2 failed intervals, 10 down minutes
        pytest.param(1, interval_error_rate, 100 - Fraction(200, 8640), id="quiet: interval"),
        pytest.param(1000, interval_error_rate, 100 - Fraction(200, 8640), id="busy: interval"),
        pytest.param(1, downtime_minutes, 100 - Fraction(1000, 43200), id="quiet: downtime"),
        pytest.param(1000, downtime_minutes, 100 - Fraction(1000, 43200), id="busy: downtime"),
        # 43,190 minutes × 10 + 10 × 1 = 431,910 requests, 10 failed
        pytest.param(1, request_based, 100 * Fraction(431900, 431910), id="quiet: requests"),
        # 43,190 minutes × 10 + 10 × 1,000 = 441,900 requests, 10,000 failed
        pytest.param(1000, request_based, 100 * Fraction(431900, 441900), id="busy: requests"),
    ],
)
def test_a_10_minute_outage_at_low_and_high_traffic(
    rpm: float, method: Callable[[MinuteCounts], Measurement], uptime: Fraction
) -> None:
    end = OUTAGE_3AM + 10
    m = Month(*APRIL).traffic(OUTAGE_3AM, end, rpm).fail(OUTAGE_3AM, end)
    assert method(m.counts()).uptime == float(uptime)


@pytest.mark.parametrize(
    ("method", "uptime"),
    [
        # 2 intervals at 15 / 500 = 3%: 100 − 2 × 3% / 8,640
        pytest.param(interval_error_rate, 100 - Fraction(6, 8640), id="interval counts 3%"),
        pytest.param(downtime_minutes, Fraction(100), id="3% is under the 5% down threshold"),
        # 43,190 × 10 + 10 × 100 = 432,900 requests, 30 failed
        pytest.param(request_based, 100 * Fraction(432870, 432900), id="requests count 30"),
    ],
)
def test_a_3_percent_error_burst(
    method: Callable[[MinuteCounts], Measurement], uptime: Fraction
) -> None:
    end = OUTAGE_3AM + 10
    m = Month(*APRIL).traffic(OUTAGE_3AM, end, 100).fail(OUTAGE_3AM, end, per_minute=3)
    assert method(m.counts()).uptime == float(uptime)


# -- describe -------------------------------------------------------------------------


def test_describe_states_the_formula_with_the_numbers() -> None:
    a = minute(2026, 4, 10, 3)
    c = Month(*APRIL).fail(a, a + 5).exclude(a + 60, a + 65).counts()
    assert interval_error_rate(c).describe() == (
        "Monthly uptime = 100% − mean of 8,639 5-minute interval error rates (0.0116%) "
        "= 99.9884%. An interval without requests counts as 0% errors; 1 wholly excluded "
        "intervals were dropped, and requests in excluded minutes of other intervals do "
        "not count."
    )
    assert downtime_minutes(c).describe() == (
        "Monthly uptime = (43,200 1-minute periods − 5 down) / 43,200 = 99.9884%. A period "
        "is down when more than 5% of its requests failed; periods without requests and "
        "excluded time count as up."
    )
    assert available_minutes(c).describe() == (
        "Monthly uptime = (maximum available minutes 43,195 − downtime 5) / 43,195 = "
        "99.9884%. Maximum available = 43,200 minutes in the month − 5 excluded; a minute "
        "is down when more than 5% of its requests failed."
    )
    assert request_based(c).describe() == (
        "Monthly success rate = (431,950 requests − 50 failed) / 431,950 = 99.9884%; 50 "
        "requests in excluded minutes were left out."
    )


# -- inputs ---------------------------------------------------------------------------


def test_minute_counts_need_one_value_per_minute() -> None:
    with pytest.raises(ValueError, match=r"^MinuteCounts\.failed: length 1 differs from"):
        MinuteCounts(0, np.zeros(2), np.zeros(1), np.zeros(2), np.zeros(2, dtype=bool))


def test_failed_cannot_exceed_total() -> None:
    with pytest.raises(ValueError, match=r"failed: exceeds total at minute 61 \(1 minutes\)"):
        MinuteCounts(60, np.ones(2), np.array([0.0, 2.0]), np.zeros(2), np.zeros(2, dtype=bool))


def test_day_starts_must_increase() -> None:
    with pytest.raises(ValueError, match="day_starts must increase strictly"):
        request_based(tiny([1] * 4, [0] * 4), day_starts=np.array([0, 2, 2], dtype=np.int64))


# -- credit ladder --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uptime", "tier", "percent", "amount"),
    [
        pytest.param(100.0, None, 0.0, "0.00", id="100% earns nothing"),
        pytest.param(99.9, None, 0.0, "0.00", id="exactly 99.9 is not below 99.9"),
        pytest.param(99.89999, LADDER[0], 10, "120.00", id="99.89999 gets 10%"),
        pytest.param(98.99999999999999, LADDER[1], 25, "300.00", id="98.999... gets 25%"),
        pytest.param(98.5, LADDER[1], 25, "300.00", id="98.5 gets 25%"),
        pytest.param(95.0, LADDER[1], 25, "300.00", id="exactly 95.0 stays at 25%"),
        pytest.param(94.99, LADDER[2], 100, "1200.00", id="94.99 gets 100%"),
    ],
)
def test_credit_tiers_apply_strictly_below_their_threshold(
    uptime: float, tier: Tier | None, percent: float, amount: str
) -> None:
    c = credit_for(uptime, LADDER, 1200)
    assert (c.tier, c.percent, c.amount) == (tier, percent, Decimal(amount))


def test_credit_steps_show_the_arithmetic() -> None:
    assert credit_for(98.5, LADDER, 1200).steps == [
        "uptime 98.5000% < 99.0% → tier 2: 25% of the monthly fee",
        "25% × 1,200.00 = 300.00",
    ]
    # rounded to 4 decimals it would read 99.0000% < 99.0%, so it is shown in full
    assert credit_for(98.99999999999999, LADDER, 1200).steps[0] == (
        "uptime 98.99999999999999% < 99.0% → tier 2: 25% of the monthly fee"
    )
    assert credit_for(99.95, LADDER, 1200).steps == [
        "uptime 99.9500% is not below 99.9% → no credit"
    ]


def test_amounts_round_half_up_to_cents() -> None:
    # 10% × 1,234.45 = 123.445: half up -> 123.45 (half even or float would give 123.44)
    c = credit_for(99.5, LADDER, 1234.45)
    assert c.amount == Decimal("123.45")
    assert c.steps[-1] == "10% × 1,234.45 = 123.445 → 123.45 (half up)"


def test_a_small_credit_is_raised_to_the_minimum() -> None:
    c = credit_for(99.5, LADDER, 100, minimum_credit=25)
    # 10% × 100.00 = 10.00 < 25.00
    assert (c.amount, c.minimum_applied) == (Decimal("25.00"), True)
    assert c.steps[-1] == "10.00 is below the minimum credit 25.00 → 25.00"


def test_no_credit_stays_zero_despite_a_minimum() -> None:
    c = credit_for(99.95, LADDER, 100, minimum_credit=25)
    assert c == Credit(None, 0.0, Decimal("0.00"), c.steps, False)


def test_a_zero_fee_earns_no_minimum_credit() -> None:
    c = credit_for(98.5, LADDER, 0, minimum_credit=25)  # 25% × 0.00 = 0.00: nothing to raise
    assert (c.percent, c.amount, c.minimum_applied) == (25, Decimal("0.00"), False)


def test_the_minimum_never_exceeds_the_capped_fee() -> None:
    c = credit_for(99.5, LADDER, 100, minimum_credit=150)
    assert c.amount == Decimal("100.00")  # 150.00 > 100% × 100.00


def test_the_cap_limits_the_percent() -> None:
    c = credit_for(98.5, LADDER, 1200, cap=20)
    assert (c.percent, c.amount) == (20, Decimal("240.00"))  # 25% capped at 20% of 1,200


def test_tiers_in_any_order_and_a_ladder_give_the_same_credit() -> None:
    shuffled = [LADDER[2], LADDER[0], LADDER[1]]
    assert credit_for(98.5, shuffled, 1200) == credit_for(98.5, Ladder(tuple(LADDER)), 1200)


@pytest.mark.parametrize(
    ("tiers", "problems"),
    [
        pytest.param(LADDER, [], id="a sound ladder"),
        pytest.param(
            [], ["no credit tiers: add at least one, like {below: 99.9, credit: 10}"], id="empty"
        ),
        pytest.param(
            [Tier(99.9, 10), Tier(99.9, 25)],
            ["overlapping tiers 1 and 2: both apply below 99.9%; give each tier its own "
             "threshold"],
            id="overlapping tiers",
        ),
        pytest.param(
            [Tier(99.0, 25), Tier(99.9, 10)],
            ["tiers 1 and 2 are out of order: thresholds must strictly decrease (highest "
             "first), got 99.0% then 99.9%"],
            id="thresholds increasing",
        ),
        pytest.param(
            [Tier(99.9, 10), Tier(99.0, 150)],
            ["tier 2 (below 99.0%): credit must be a percent of the fee in (0, 100], got 150"],
            id="credit over 100%",
        ),
        pytest.param(
            [Tier(99.9, 25), Tier(99.0, 25)],
            ["tiers 1 and 2: credit must increase as uptime falls, got 25% below 99.9% then "
             "25% below 99.0%"],
            id="credit not increasing",
        ),
        pytest.param(
            [Tier(100.5, 10), Tier(99.0, 0)],
            ["tier 1: `below` is an uptime percent in (0, 100], got 100.5",
             "tier 2 (below 99.0%): credit must be a percent of the fee in (0, 100], got 0"],
            id="threshold over 100% and a zero credit",
        ),
    ],
)  # fmt: skip
def test_check_ladder(tiers: list[Tier], problems: list[str]) -> None:
    assert check_ladder(tiers) == problems


def test_a_bad_ladder_is_refused_when_crediting() -> None:
    with pytest.raises(ValueError, match=r"^credit ladder: overlapping tiers 1 and 2"):
        credit_for(98.0, [Tier(99.0, 10), Tier(99.0, 25)], 100)
