"""What each deploy or incident cost: the error budget spent between one annotation
and the next (or the evaluation time), as a share of the window's whole budget."""

from __future__ import annotations

from dataclasses import dataclass

from slokit.core.series import Series
from slokit.core.windows import Window


@dataclass(frozen=True)
class Marker:
    minute: int  # epoch minute of the annotation
    kind: str
    text: str | None


@dataclass(frozen=True)
class IntervalCost:
    marker: Marker
    until: int  # epoch minute, exclusive
    bad: float
    valid: float
    spent: float | None  # fraction of the window's budget; None when it has none
    postmortem: bool  # spent more than the policy's postmortem share


def interval_costs(
    markers: list[Marker],
    series: Series,
    window: Window,
    budget_total: float,
    postmortem_over: float,
) -> list[IntervalCost]:
    """One cost per marker inside the window, each interval running to the next
    marker (markers sorted by time)."""
    inside = sorted(
        (m for m in markers if window.start <= m.minute < window.end), key=lambda m: m.minute
    )
    out = []
    for i, m in enumerate(inside):
        until = inside[i + 1].minute if i + 1 < len(inside) else window.end
        good, valid = series.window(m.minute, until)
        bad = valid - good
        spent = bad / budget_total if budget_total > 0 else None
        out.append(
            IntervalCost(m, until, bad, valid, spent, spent is not None and spent > postmortem_over)
        )
    return out
