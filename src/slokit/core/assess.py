"""One SLO window's numbers from a good/valid series: SLI, error budget, burn rates
over the standard alerting windows, projected exhaustion and a burn-down timeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slokit.core.budget import Budget, burn_rate, error_budget, minutes_to_exhaustion
from slokit.core.intervals import wilson
from slokit.core.series import Floats, Series
from slokit.core.windows import Window

# The windows of the SRE workbook's multiwindow, multi-burn-rate alerts (ch. 5, table 5-8).
BURN_WINDOWS: dict[str, int] = {
    "5m": 5,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "6h": 360,
    "1d": 1440,
    "3d": 4320,
}
EXHAUSTION_AT = ("1h", "6h")
TIMELINE_POINTS = 240


@dataclass(frozen=True)
class Assessment:
    good: float
    valid: float
    sli: float | None  # fraction
    budget: Budget
    burn_rates: dict[str, float | None]  # the burn windows and "window"
    exhaustion_minutes: dict[str, float | None]  # minutes from the window end
    interval: tuple[float, float] | None  # Wilson 95% for sampled SLIs
    no_data: bool
    too_few_events: bool
    timeline_minutes: np.ndarray  # epoch minute of each point
    timeline_remaining: Floats  # remaining budget fraction at each point


def lookback(window: Window, longest: int = 0) -> int:
    """The first minute an assessment of `window` reads: a rolling window's timeline
    needs one window before its own start; burn windows need up to 3 days, alert rows
    up to `longest` minutes."""
    span = window.length if window.rolling else 0
    trailing = max(*BURN_WINDOWS.values(), longest)
    return min(window.start - span, window.end - trailing)


def assess(
    series: Series,
    window: Window,
    objective: float,
    *,
    min_events: int = 1,
    sampled: bool = False,
) -> Assessment:
    good, valid = series.window(window.start, window.end)
    budget = error_budget(good, valid, objective)
    burns: dict[str, float | None] = {
        name: burn_rate(*series.window(window.end - minutes, window.end), objective)
        for name, minutes in BURN_WINDOWS.items()
    }
    burns["window"] = burn_rate(good, valid, objective)
    exhaustion = {
        name: minutes_to_exhaustion(budget.remaining, window.length, burns[name])
        for name in EXHAUSTION_AT
    }
    t_min, t_rem = _timeline(series, window, objective)
    return Assessment(
        good=good,
        valid=valid,
        sli=good / valid if valid > 0 else None,
        budget=budget,
        burn_rates=burns,
        exhaustion_minutes=exhaustion,
        interval=wilson(good, valid) if sampled else None,
        no_data=valid <= 0,
        too_few_events=0 < valid < min_events,
        timeline_minutes=t_min,
        timeline_remaining=t_rem,
    )


def _timeline(series: Series, window: Window, objective: float) -> tuple[np.ndarray, Floats]:
    """Remaining budget at evenly spaced points up to the window end. For a rolling
    window each point is its own trailing window; for a calendar window, the period
    so far."""
    span = max(window.elapsed, 1)
    step = max(series.step, -(-span // TIMELINE_POINTS))
    step = -(-step // series.step) * series.step
    ends = np.arange(window.end, window.start, -step, dtype=np.int64)[::-1]
    starts = ends - window.length if window.rolling else np.full_like(ends, window.start)
    good, valid = series.windows(starts, ends)
    allowed = (1.0 - objective) * valid
    bad = valid - good
    with np.errstate(divide="ignore", invalid="ignore"):
        remaining = np.where(allowed > 0, 1.0 - bad / allowed, np.where(bad > 0, -np.inf, 1.0))
    return ends, remaining
