"""SLA uptime the way cloud contracts measure it, and the service credit it earns.

A contract names one measurement method; each is its own function over one customer's
billing month as per-minute counts (`MinuteCounts`). Summarised in our own words:

- `interval_error_rate` (AWS style, e.g. the Amazon S3 SLA): cut the month into
  5-minute intervals; each interval's error rate is failed / total requests (0% when it
  had no requests); monthly uptime is 100% minus the plain average of those rates. A
  quiet interval weighs as much as a busy one, and a partly failing interval counts in
  proportion.
- `downtime_minutes` (Google Cloud style): a minute (or 5-minute period) is down when
  its error rate exceeds a threshold (5% or 10% in most of those SLAs); uptime is the
  share of the month's periods that were not down. The denominator is every period of
  the month, so excluded time is simply never down (it counts as up). Rules some of
  those SLAs add, such as a minimum number of requests per period or a minimum run of
  consecutive down minutes, are not modelled here.
- `available_minutes` (Azure style): "maximum available minutes" are the month's
  minutes minus excluded minutes; downtime is the available minutes judged down; uptime
  is (maximum available − downtime) / maximum available. Unlike Google's form, excluded
  time leaves the denominator instead of counting as up.
- `request_based`: (requests − failed) / requests over the non-excluded minutes; a busy
  outage weighs more than a quiet one. 100% when there were no requests.
- `latency_attainment`: the same two shapes for latency: the share of requests within
  the latency target, or the share of intervals where at least `target` of the requests
  were.

Where they part ways: a 10-minute total outage costs the interval and minute methods
the same whether it saw 1 or 1,000 requests a minute, while `request_based` barely
notices the quiet one; an interval at 3% errors costs 3% of an interval under
`interval_error_rate` and nothing under a 5% down threshold.

Every result is a `Measurement` with the evidence (the periods that count against
uptime), a per-day breakdown and a one-paragraph `describe()`. Uptime is computed as
one exact rational from the float counts and rounded once, so hand-made cases are
exact; per-interval error rates are summed with `math.fsum`.

The credit ladder (`Tier`, `check_ladder`, `credit_for`) maps uptime to a percent of
the month's fee; tiers apply strictly below their threshold, and the amount is
rounded half up to cents with `Decimal`.

The month's fee is a `Fee`: a fixed amount, a row of a fees file, or billed from usage
(`usage_fee`: the covered requests' cost to the cent, plus a markup, at least a
minimum), each with a one-line account of where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from slokit.core.windows import from_minute, period_bounds, to_minute

Floats = NDArray[np.float64]
Minutes = NDArray[np.int64]
DAY = 1440


@dataclass(frozen=True)
class MinuteCounts:
    """One customer's billing month, minute by minute from `start` (epoch minute)."""

    start: int
    total: Floats  # requests that count (customer-caused and other exclusions removed)
    failed: Floats  # of those, failed (server errors, timeouts)
    slow: Floats  # of those, missed the latency target; zeros if unused
    excluded: NDArray[np.bool_]  # minutes outside the measurement (maintenance, ...)

    def __post_init__(self) -> None:
        n = len(self.total)
        for name in ("failed", "slow", "excluded"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"MinuteCounts.{name}: length {len(getattr(self, name))} differs from "
                    f"total's {n}; give one value per minute of the month"
                )
        for name in ("failed", "slow"):
            over = np.flatnonzero(getattr(self, name) > self.total)
            if len(over):
                raise ValueError(
                    f"MinuteCounts.{name}: exceeds total at minute {self.start + int(over[0])}"
                    f" ({len(over)} minutes); count {name} requests among the total"
                )

    @property
    def end(self) -> int:
        return self.start + len(self.total)


class Period(NamedTuple):
    """A stretch of time that counts against uptime (evidence for a report). A named
    tuple, not a frozen dataclass: a month can hold 40,000 of them, and a frozen
    dataclass takes about four times as long to build."""

    start: int  # epoch minute
    minutes: int
    requests: float  # counted requests (those in excluded minutes left out)
    failed: float  # failed requests; slow ones for latency_attainment
    error_rate: float  # failed / requests; 0 without requests
    excluded_minutes: int


@dataclass(frozen=True)
class Measurement:
    method: str
    uptime: float  # percent
    good: float  # in `unit`
    total: float
    unit: str  # intervals, periods, minutes or requests
    periods: list[Period]  # only those that count against uptime
    daily: list[tuple[int, float]]  # (start minute of the local day, that day's uptime)
    interval: int = 1  # minutes per interval or period
    threshold: float | None = None  # error-rate threshold, or the latency target share
    left_out: float = 0.0  # units left out of the denominator (excluded or empty)

    def describe(self) -> str:
        """The formula with this month's numbers, in one paragraph."""
        up, tot, bad = _pct(self.uptime), _num(self.total), _num(self.total - self.good)
        size = f"{self.interval}-minute"
        limit = "" if self.threshold is None else f"{self.threshold * 100:g}%"
        if self.method == "interval_error_rate":
            mean = 100.0 - self.uptime if self.total else 0.0
            return (
                f"Monthly uptime = 100% − mean of {tot} {size} interval error rates "
                f"({_pct(mean)}) = {up}. An interval without requests counts as 0% errors; "
                f"{_num(self.left_out)} wholly excluded intervals were dropped, and requests "
                "in excluded minutes of other intervals do not count."
            )
        if self.method == "downtime_minutes":
            return (
                f"Monthly uptime = ({tot} {size} periods − {bad} down) / {tot} = {up}. "
                f"A period is down when more than {limit} of its requests failed; periods "
                "without requests and excluded time count as up."
            )
        if self.method == "available_minutes":
            return (
                f"Monthly uptime = (maximum available minutes {tot} − downtime {bad}) / {tot}"
                f" = {up}. Maximum available = {_num(self.total + self.left_out)} minutes in "
                f"the month − {_num(self.left_out)} excluded; a minute is down when more "
                f"than {limit} of its requests failed."
            )
        if self.method == "request_based":
            return (
                f"Monthly success rate = ({tot} requests − {bad} failed) / {tot} = {up}; "
                f"{_num(self.left_out)} requests in excluded minutes were left out."
            )
        if self.unit == "requests":
            return (
                f"Latency attainment = ({tot} requests − {bad} slower than the target) / "
                f"{tot} = {up}; {_num(self.left_out)} requests in excluded minutes were "
                "left out."
            )
        return (
            f"Latency attainment = {_num(self.good)} of {tot} {size} intervals with at "
            f"least {limit} of requests within the latency target = {up}; "
            f"{_num(self.left_out)} excluded or empty intervals were left out."
        )


def month_minutes(year: int, month: int, tz: tzinfo) -> tuple[int, int]:
    """[start, end) epoch minutes of the billing month in `tz` (DST included)."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    # noon of the 15th is inside the month in every zone, whatever DST does at midnight
    return period_bounds(to_minute(datetime(year, month, 15, 12, tzinfo=tz)), "month", tz)


def local_days(start: int, end: int, tz: tzinfo) -> Minutes:
    """Epoch minutes of each local midnight in [start, end), `start` first."""
    out = [start]
    day = from_minute(start).astimezone(tz).date()
    while True:
        day = day.fromordinal(day.toordinal() + 1)
        m = to_minute(datetime(day.year, day.month, day.day, tzinfo=tz))
        if m >= end:
            return np.asarray(out, dtype=np.int64)
        out.append(m)


# -- measurement methods --------------------------------------------------------------


def interval_error_rate(
    c: MinuteCounts, interval: int = 5, *, day_starts: Minutes | None = None
) -> Measurement:
    """100% − mean error rate of `interval`-minute intervals (AWS style)."""
    u = _units(c, interval, c.failed)
    kept = u.excluded < u.minutes  # a wholly excluded interval is dropped
    rates = _rates(u.bad, u.requests)
    return _measure(
        "interval_error_rate",
        "intervals",
        c,
        u,
        weight=kept.astype(float),
        against=np.where(kept, rates, 0.0),
        day_starts=day_starts,
        interval=interval,
        left_out=float(np.sum(~kept)),
    )


def downtime_minutes(
    c: MinuteCounts,
    period: int = 1,
    threshold: float = 0.05,
    *,
    day_starts: Minutes | None = None,
) -> Measurement:
    """Share of the month's periods not down (Google style). Down: error rate strictly
    above `threshold` (a fraction). Every period is in the denominator; excluded minutes
    contribute no requests, so wholly excluded periods are up."""
    _check_threshold(threshold)
    u = _units(c, period, c.failed)
    down = _rates(u.bad, u.requests) > threshold
    return _measure(
        "downtime_minutes",
        "periods",
        c,
        u,
        weight=np.ones(len(u.starts)),
        against=down.astype(float),
        day_starts=day_starts,
        interval=period,
        threshold=threshold,
    )


def available_minutes(
    c: MinuteCounts, threshold: float = 0.05, *, day_starts: Minutes | None = None
) -> Measurement:
    """(maximum available − downtime) / maximum available minutes (Azure style), where
    maximum available leaves out excluded minutes and downtime is the remaining minutes
    with an error rate strictly above `threshold`."""
    _check_threshold(threshold)
    u = _units(c, 1, c.failed)
    kept = u.excluded == 0
    down = kept & (_rates(u.bad, u.requests) > threshold)
    return _measure(
        "available_minutes",
        "minutes",
        c,
        u,
        weight=kept.astype(float),
        against=down.astype(float),
        day_starts=day_starts,
        threshold=threshold,
        left_out=float(np.sum(~kept)),
    )


def request_based(c: MinuteCounts, *, day_starts: Minutes | None = None) -> Measurement:
    """(requests − failed) / requests over non-excluded minutes; 100% without requests."""
    u = _units(c, 1, c.failed)
    return _measure(
        "request_based",
        "requests",
        c,
        u,
        weight=u.requests,
        against=u.bad,
        day_starts=day_starts,
        left_out=float(np.sum(c.total[c.excluded])),
    )


def latency_attainment(
    c: MinuteCounts,
    per: str = "requests",
    interval: int = 5,
    target: float = 0.99,
    *,
    day_starts: Minutes | None = None,
) -> Measurement:
    """Per requests: (requests − slow) / requests over non-excluded minutes. Per
    intervals: the share of non-excluded, non-empty intervals where at least `target`
    (a fraction) of the requests met the latency target."""
    if per == "requests":
        u = _units(c, 1, c.slow)
        return _measure(
            "latency_attainment",
            "requests",
            c,
            u,
            weight=u.requests,
            against=u.bad,
            day_starts=day_starts,
            left_out=float(np.sum(c.total[c.excluded])),
        )
    if per != "intervals":
        raise ValueError(f"latency_attainment: per must be 'requests' or 'intervals', got {per!r}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"latency_attainment: target must be a fraction in (0, 1], got {target}")
    u = _units(c, interval, c.slow)
    kept = u.requests > 0  # wholly excluded intervals have no counted requests either
    met = np.divide(u.requests - u.bad, u.requests, out=np.zeros_like(u.bad), where=kept)
    missed = kept & (met < target)
    return _measure(
        "latency_attainment",
        "intervals",
        c,
        u,
        weight=kept.astype(float),
        against=missed.astype(float),
        day_starts=day_starts,
        interval=interval,
        threshold=target,
        left_out=float(np.sum(~kept)),
    )


# -- shared machinery -----------------------------------------------------------------


@dataclass(frozen=True)
class _Units:
    """The month cut into `size`-minute units aligned to its start (the last may be
    shorter), with the requests of non-excluded minutes summed per unit."""

    starts: Minutes
    minutes: Minutes
    requests: Floats
    bad: Floats  # failed or slow
    excluded: Minutes  # excluded minutes per unit


def _units(c: MinuteCounts, size: int, bad: Floats) -> _Units:
    if size < 1:
        raise ValueError(f"interval must be at least 1 minute, got {size}")
    n = len(c.total)
    offsets = np.arange(0, n, size, dtype=np.int64)
    counted = ~c.excluded

    def per_unit(values: NDArray[np.float64] | NDArray[np.int64]) -> Floats:
        if n == 0:
            return np.zeros(0)
        sums: Floats = np.add.reduceat(values, offsets).astype(np.float64)
        return sums

    return _Units(
        starts=c.start + offsets,
        minutes=np.minimum(size, n - offsets),
        requests=per_unit(np.where(counted, c.total, 0.0)),
        bad=per_unit(np.where(counted, bad, 0.0)),
        excluded=per_unit(c.excluded.astype(np.int64)).astype(np.int64),
    )


def _rates(bad: Floats, requests: Floats) -> Floats:
    """bad / requests, 0 where there were no requests."""
    out: Floats = np.divide(bad, requests, out=np.zeros_like(bad), where=requests > 0)
    return out


def _uptime(weight: Sequence[float], against: Sequence[float]) -> tuple[float, float, float]:
    """(uptime percent, good, total): 100 × (1 − Σagainst / Σweight), one exact rational
    from the float sums, rounded once; 100% when nothing was counted. Give lists: fsum
    over a numpy array boxes every element (about 10x slower)."""
    total = math.fsum(weight)
    bad = math.fsum(against)
    if total <= 0:
        return 100.0, 0.0, 0.0
    return float(100 * (1 - Fraction(bad) / Fraction(total))), total - bad, total


def _measure(
    method: str,
    unit: str,
    c: MinuteCounts,
    u: _Units,
    *,
    weight: Floats,
    against: Floats,
    day_starts: Minutes | None,
    interval: int = 1,
    threshold: float | None = None,
    left_out: float = 0.0,
) -> Measurement:
    """Aggregate per-unit `weight` (denominator) and `against` (what counts against
    uptime) over the month and each day; the evidence is every unit with `against` > 0."""
    weights, againsts = weight.tolist(), against.tolist()
    uptime, good, total = _uptime(weights, againsts)
    # a month can hold tens of thousands of such units: pick them with numpy, then build
    # from plain lists (indexing numpy element by element was most of a report's time)
    hit = np.flatnonzero(against > 0)
    columns = (u.starts, u.minutes, u.requests, u.bad, _rates(u.bad, u.requests), u.excluded)
    periods = list(map(Period._make, zip(*(col[hit].tolist() for col in columns), strict=True)))
    days = _days(c, day_starts)
    # a unit belongs to the day its first minute falls in
    cuts = np.searchsorted(u.starts, np.append(days, c.end)).tolist()
    daily = [
        (d, _uptime(weights[a:b], againsts[a:b])[0])
        for d, a, b in zip(days.tolist(), cuts[:-1], cuts[1:], strict=True)
    ]
    return Measurement(
        method=method,
        uptime=uptime,
        good=good,
        total=total,
        unit=unit,
        periods=periods,
        daily=daily,
        interval=interval,
        threshold=threshold,
        left_out=left_out,
    )


def _days(c: MinuteCounts, day_starts: Minutes | None) -> Minutes:
    if day_starts is None:
        return np.arange(c.start, c.end, DAY, dtype=np.int64)
    days = np.asarray(day_starts, dtype=np.int64)
    if len(days) and (days[0] < c.start or np.any(np.diff(days) <= 0)):
        raise ValueError(
            "day_starts must increase strictly and start at or after the month's first "
            f"minute {c.start}"
        )
    return days[days < c.end]  # days after a month cut short (in progress) have no data


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be an error-rate fraction in [0, 1), got {threshold}")


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4f}"


def _pct(x: float) -> str:
    return f"{x:.4f}%"


# -- credit ladder --------------------------------------------------------------------


class TierLike(Protocol):
    @property
    def below(self) -> float: ...

    @property
    def credit(self) -> float: ...


@dataclass(frozen=True)
class Tier:
    below: float  # uptime percent; the tier applies when uptime < below
    credit: float  # percent of the month's fee


@dataclass(frozen=True)
class Ladder:
    """Credit tiers, highest threshold first; invalid ladders do not construct."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        problems = check_ladder(self.tiers)
        if problems:
            raise ValueError("credit ladder: " + "; ".join(problems))

    @classmethod
    def of(cls, tiers: Sequence[TierLike]) -> Ladder:
        """A ladder from tiers in any order (sorted by threshold, highest first)."""
        ordered = sorted(tiers, key=lambda t: t.below, reverse=True)
        return cls(tuple(Tier(float(t.below), float(t.credit)) for t in ordered))


@dataclass(frozen=True)
class Credit:
    tier: Tier | None  # the tier applied, None when uptime is under no threshold
    percent: float  # percent of the fee from the tier (after the cap)
    amount: Decimal  # in the fee's currency, rounded half up to cents
    steps: list[str] = field(default_factory=list)  # the arithmetic, for a report
    minimum_applied: bool = False


def check_ladder(tiers: Sequence[TierLike]) -> list[str]:
    """Every problem with a ladder given highest threshold first; [] when it is sound."""
    if not tiers:
        return ["no credit tiers: add at least one, like {below: 99.9, credit: 10}"]
    out: list[str] = []
    for i, t in enumerate(tiers, 1):
        if not _in_range(t.below):
            out.append(f"tier {i}: `below` is an uptime percent in (0, 100], got {t.below}")
        if not _in_range(t.credit):
            out.append(
                f"tier {i} (below {t.below}%): credit must be a percent of the fee in "
                f"(0, 100], got {t.credit}"
            )
    for i, (hi, lo) in enumerate(pairwise(tiers), 1):
        if lo.below == hi.below:
            out.append(
                f"overlapping tiers {i} and {i + 1}: both apply below {hi.below}%; "
                "give each tier its own threshold"
            )
        elif lo.below > hi.below:
            out.append(
                f"tiers {i} and {i + 1} are out of order: thresholds must strictly decrease "
                f"(highest first), got {hi.below}% then {lo.below}%"
            )
        elif _in_range(lo.credit) and _in_range(hi.credit) and lo.credit <= hi.credit:
            out.append(
                f"tiers {i} and {i + 1}: credit must increase as uptime falls, got "
                f"{hi.credit:g}% below {hi.below}% then {lo.credit:g}% below {lo.below}%"
            )
    return out


def _in_range(percent: float) -> bool:
    return 0.0 < percent <= 100.0


def credit_for(
    uptime: float,
    tiers: Sequence[TierLike] | Ladder,
    fee: float | Decimal,
    minimum_credit: float | Decimal = 0.0,
    cap: float = 100.0,
) -> Credit:
    """The credit for a month at `uptime` percent: the tier with the smallest threshold
    the uptime is still under; `cap` limits the percent (and the amount to `cap`% of the
    fee); a positive amount below `minimum_credit` is raised to it."""
    ladder = tiers if isinstance(tiers, Ladder) else Ladder.of(tiers)
    if not math.isfinite(uptime):
        raise ValueError(f"uptime must be a finite percent, got {uptime}")
    if not 0.0 < cap <= 100.0:
        raise ValueError(f"cap must be a percent in (0, 100], got {cap}")
    fee_d, minimum = _money(fee, "fee"), _money(minimum_credit, "minimum_credit")
    hit = [(i, t) for i, t in enumerate(ladder.tiers, 1) if uptime < t.below]
    if not hit:
        top = ladder.tiers[0].below
        steps = [f"uptime {_shown(uptime, top)}% is not below {top!r}% → no credit"]
        return Credit(None, 0.0, Decimal("0.00"), steps)
    number, tier = hit[-1]
    steps = [
        f"uptime {_shown(uptime, tier.below)}% < {tier.below!r}% → tier {number}: "
        f"{tier.credit:g}% of the monthly fee"
    ]
    percent = tier.credit
    if percent > cap:
        steps.append(f"{percent:g}% capped at {cap:g}%")
        percent = cap
    exact = fee_d * Decimal(repr(percent)) / 100
    amount = _cents(exact)
    shown = f"{exact:,.2f}" if exact == amount else f"{exact:,f} → {amount:,.2f} (half up)"
    steps.append(f"{percent:g}% × {fee_d:,.2f} = {shown}")
    applied = False
    if 0 < amount < minimum:
        steps.append(f"{amount:,.2f} is below the minimum credit {minimum:,.2f} → {minimum:,.2f}")
        amount, applied = minimum, True
        limit = _cents(fee_d * Decimal(repr(cap)) / 100)
        if amount > limit:
            steps.append(f"{amount:,.2f} exceeds {cap:g}% of the fee → {limit:,.2f}")
            amount = limit
    return Credit(tier, percent, amount, steps, applied)


def _money(x: float | Decimal, name: str) -> Decimal:
    d = x if isinstance(x, Decimal) else Decimal(repr(float(x)))  # the decimal as written
    if not d.is_finite() or d < 0:
        raise ValueError(f"{name} must be a non-negative amount, got {x}")
    return _cents(d)


def _cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _shown(uptime: float, threshold: float) -> str:
    """Uptime to 4 decimals, or in full when rounding would flip the comparison."""
    short = f"{uptime:.4f}"
    return short if (float(short) < threshold) == (uptime < threshold) else repr(uptime)


# -- the month's fee ------------------------------------------------------------------


@dataclass(frozen=True)
class Fee:
    """The fee the credit is a percent of, and where it came from (for the report)."""

    amount: Decimal
    source: str


def usage_fee(
    cost: Decimal,
    requests: int,
    unpriced: int = 0,
    *,
    markup: float = 0.0,
    minimum: float = 0.0,
    currency: str = "USD",
) -> Fee:
    """The month billed from usage: `cost` (the requests' summed cost) rounded half up to
    cents, times (1 + `markup`/100), rounded to cents again, raised to `minimum`. Rounding
    the cost first keeps the shown arithmetic exact: 812.40 + 20% = 974.88."""
    if not 0 <= unpriced <= requests:
        raise ValueError(f"unpriced requests must be within 0..{requests}, got {unpriced}")
    if not math.isfinite(markup) or markup < 0:
        raise ValueError(f"markup must be a non-negative percent, got {markup}")
    base, floor = _money(cost, "cost"), _money(minimum, "minimum")
    amount = _cents(base * (1 + Decimal(repr(float(markup))) / 100))
    counted = f"{requests:,} request{'' if requests == 1 else 's'}"
    if unpriced:
        counted += f" ({unpriced:,} without a price, counted at 0)"
    text = f"usage: {counted}, cost {base:,.2f} {currency}"
    if markup:
        text += f" + {markup:g}% markup = {amount:,.2f} {currency}"
    if amount < floor:
        text += f", raised to the minimum {floor:,.2f} {currency}"
        amount = floor
    return Fee(amount, text)
