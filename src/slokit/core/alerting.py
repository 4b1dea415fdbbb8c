"""Multiwindow, multi-burn-rate alert conditions and the alert state machine.

An alert row holds when the burn rate over its long window AND over its short window
both exceed its threshold (Google SRE workbook, ch. 5, "Alerting on SLOs", approach 6).
The workbook's rows are written for a 30-day window as "this share of the window's
budget spent within the long window"; for any other window length the threshold is
scaled so the row still means the same share of the budget:

    threshold = budget fraction x window length / long window

so the 2%-in-1h row is 14.4 for 30 days, 13.44 for 28 days and 3.36 for 7 days.

No I/O and no clock: callers pass counts and times in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from slokit.core.series import Floats, Series


@dataclass(frozen=True)
class BurnRow:
    severity: str
    long: int  # minutes
    short: int  # minutes
    budget: float | None = None  # fraction of the window's budget spent within `long`
    burn: float | None = None  # or a fixed burn-rate threshold
    for_minutes: int = 0  # how long the condition must hold before it fires

    def threshold(self, window_minutes: int) -> float:
        if self.burn is not None:
            return self.burn
        assert self.budget is not None
        return self.budget * window_minutes / self.long


# The SRE workbook's recommended rows (ch. 5, table 5-8, for a 99.9% SLO over 30 days):
# page on 2% of the budget in 1h (burn 14.4, short window 5m) or 5% in 6h (burn 6,
# short 30m); ticket on 10% in 1d (burn 3, short 2h) or 10% in 3d (burn 1, short 6h).
WORKBOOK_ROWS: tuple[BurnRow, ...] = (
    BurnRow("page", long=60, short=5, budget=0.02),
    BurnRow("page", long=360, short=30, budget=0.05),
    BurnRow("ticket", long=1440, short=120, budget=0.10),
    BurnRow("ticket", long=4320, short=360, budget=0.10),
)

# Below this many valid events in the long window a row does not fire. With 100, a
# single failure is at most a 1% error ratio: burn 10 at 99.9%, under the 14.4 page
# threshold, so one unlucky request at night cannot page anyone.
DEFAULT_MIN_EVENTS = 100


@dataclass(frozen=True)
class RowSignal:
    """One row over many evaluation minutes (arrays aligned with `ends`)."""

    row: BurnRow
    threshold: Floats
    long_burn: Floats  # NaN where the window has no valid events
    short_burn: Floats
    long_valid: Floats
    holds: NDArray[np.bool_]


def _burn(good: Floats, valid: Floats, objective: float) -> Floats:
    """`core.budget.burn_rate` for many windows at once (same arithmetic)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid > 0, ((valid - good) / valid) / (1.0 - objective), np.nan)


def row_signals(
    rows: Iterable[BurnRow],
    series: Series,
    ends: NDArray[np.int64],
    window_minutes: NDArray[np.int64],
    objective: float,
    min_events: int = DEFAULT_MIN_EVENTS,
) -> list[RowSignal]:
    """Each row's burn rates and whether it holds, at every minute of `ends` (the
    exclusive end of each evaluation), for an SLO at `objective` (a fraction) whose
    window is `window_minutes` long at that minute."""
    out = []
    for row in rows:
        if row.burn is not None:
            threshold = np.full(len(ends), row.burn)
        else:
            assert row.budget is not None
            threshold = row.budget * window_minutes / row.long
        lg, lv = series.windows(ends - row.long, ends)
        sg, sv = series.windows(ends - row.short, ends)
        long_burn, short_burn = _burn(lg, lv, objective), _burn(sg, sv, objective)
        with np.errstate(invalid="ignore"):
            holds = (lv >= min_events) & (long_burn > threshold) & (short_burn > threshold)
        out.append(RowSignal(row, threshold, long_burn, short_burn, lv, holds))
    return out


def quiet(series: Series, starts: NDArray[np.int64], ends: NDArray[np.int64], minutes: int) -> Any:
    """No-data condition at every minute: no valid events in the last `minutes`,
    though the SLO window had some (an SLO that had traffic and stopped)."""
    _, recent = series.windows(ends - minutes, ends)
    _, whole = series.windows(starts, ends)
    return (recent <= 0) & (whole > 0)


# -- the state machine ------------------------------------------------------------

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


@dataclass(frozen=True)
class AlertState:
    """One alert (SLO, group, severity, reason) between evaluations. `resolved`
    behaves like `inactive` but remembers the last episode."""

    state: str = INACTIVE
    pending_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None


def step(
    current: AlertState, holds: bool, now: datetime, for_minutes: int = 0
) -> tuple[AlertState, str | None]:
    """The next state and the transition to announce: "firing" or "resolved" (or
    None). inactive -> pending (while `for` runs) -> firing -> resolved."""
    active = current.state in (PENDING, FIRING)
    if holds:
        if current.state == FIRING:
            return current, None
        since = current.pending_since if current.state == PENDING else now
        assert since is not None
        if now - since >= timedelta(minutes=for_minutes):
            return AlertState(FIRING, since, now, None), FIRING
        return AlertState(PENDING, since, current.fired_at, current.resolved_at), None
    if current.state == FIRING:
        return replace(current, state=RESOLVED, pending_since=None, resolved_at=now), RESOLVED
    if active:  # pending that never fired
        return AlertState(INACTIVE, None, current.fired_at, current.resolved_at), None
    return current, None
