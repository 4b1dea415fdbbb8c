"""Error budgets, burn rates and time to exhaustion (Google SRE workbook, ch. 2 and 5).

- error budget = (1 - objective) x valid events
- burn rate over w = (bad_w / valid_w) / (1 - objective); 1 spends the budget exactly
  over the SLO window
- time to exhaustion at burn b = remaining budget fraction x window / b
Objectives here are fractions (0.999), not percents.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    total: float  # allowed bad events (or units) over the window
    consumed: float  # fraction of the budget spent; > 1 when overspent
    remaining: float  # 1 - consumed; negative when overspent
    remaining_events: float  # total - bad


def error_budget(good: float, valid: float, objective: float) -> Budget:
    """Budget of a window with `good` of `valid` events at `objective` (a fraction)."""
    _check_objective(objective)
    total = (1.0 - objective) * valid
    bad = valid - good
    if total > 0:
        consumed = bad / total
    else:  # no valid events: nothing spent; bad events with no budget: all spent
        consumed = float("inf") if bad > 0 else 0.0
    return Budget(
        total=total, consumed=consumed, remaining=1.0 - consumed, remaining_events=total - bad
    )


def burn_rate(good: float, valid: float, objective: float) -> float | None:
    """Burn rate of a window, or None when it has no valid events."""
    _check_objective(objective)
    if valid <= 0:
        return None
    return ((valid - good) / valid) / (1.0 - objective)


def minutes_to_exhaustion(
    remaining: float, window_minutes: float, burn: float | None
) -> float | None:
    """Minutes until the budget runs out at a constant `burn`; None if it never does or
    already has."""
    if burn is None or burn <= 0 or remaining <= 0:
        return None
    return remaining * window_minutes / burn


def budget_fraction_spent(burn: float, minutes: float, window_minutes: float) -> float:
    """Fraction of the window's budget spent by burning at `burn` for `minutes`."""
    return burn * minutes / window_minutes


def _check_objective(objective: float) -> None:
    if not 0.0 < objective < 1.0:
        raise ValueError(f"objective must be a fraction in (0, 1), got {objective}")
