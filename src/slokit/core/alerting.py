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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from slokit.core.budget import burn_rate


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
class RowCheck:
    row: BurnRow
    threshold: float
    long_burn: float | None
    short_burn: float | None
    long_valid: float
    holds: bool


Counts = Callable[[int], tuple[float, float]]  # window minutes -> (good, valid)


def check_rows(
    rows: Iterable[BurnRow],
    counts: Counts,
    objective: float,
    window_minutes: int,
    min_events: int = DEFAULT_MIN_EVENTS,
) -> list[RowCheck]:
    """Each row's burn rates and whether it holds, for an SLO at `objective` (a
    fraction) whose window is `window_minutes` long."""
    out = []
    for row in rows:
        threshold = row.threshold(window_minutes)
        lg, lv = counts(row.long)
        sg, sv = counts(row.short)
        long_burn = burn_rate(lg, lv, objective)
        short_burn = burn_rate(sg, sv, objective)
        holds = (
            lv >= min_events
            and long_burn is not None
            and short_burn is not None
            and long_burn > threshold
            and short_burn > threshold
        )
        out.append(RowCheck(row, threshold, long_burn, short_burn, lv, holds))
    return out


def by_severity(checks: Iterable[RowCheck]) -> dict[str, RowCheck | None]:
    """Per severity, the first row that holds (None when none does)."""
    out: dict[str, RowCheck | None] = {}
    for c in checks:
        if out.get(c.row.severity) is None:
            out[c.row.severity] = c if c.holds else None
    return out


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
