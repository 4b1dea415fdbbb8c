"""The status of one SLO (and group) at one time: the engine's output, as small
typed objects that serialise to the JSON `slokit status --json` prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slokit.core.annotation_cost import IntervalCost
from slokit.core.series import Series
from slokit.core.windows import from_minute


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return None
    return round(float(value), digits)


@dataclass(frozen=True)
class ErrorBudget:
    total: float  # allowed bad events (slices, dollars) over the window so far
    consumed: float  # fraction of the budget spent
    remaining: float  # fraction left; negative when overspent
    remaining_events: float
    unit: str  # events | slices | usd


@dataclass(frozen=True)
class Status:
    service: str
    slo: str
    sli_kind: str
    group: dict[str, str | None]
    window_start: datetime
    window_end: datetime
    window: str  # "30d" or "month (Europe/Berlin)"
    budgeting: str
    good: float
    valid: float
    sli: float | None  # percent
    objective: float  # percent
    error_budget: ErrorBudget
    burn_rates: dict[str, float | None]
    exhaustion: dict[str, datetime | None]
    interval: tuple[float, float] | None  # percent, Wilson 95%
    no_data: bool
    too_few_events: bool
    timeline: list[tuple[datetime, float]] = field(default_factory=list)
    # budget spent between each annotation in the window and the next
    annotations: list[IntervalCost] = field(default_factory=list)
    # the counts the status was computed from (minutes or slices), for alert conditions
    series: Series | None = field(default=None, repr=False, compare=False)

    @property
    def worst_burn(self) -> tuple[str, float] | None:
        rates = [(k, v) for k, v in self.burn_rates.items() if v is not None and k != "window"]
        return max(rates, key=lambda kv: kv[1]) if rates else None

    @property
    def meets_objective(self) -> bool | None:
        return None if self.sli is None else self.sli >= self.objective - 1e-9

    def to_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        b = self.error_budget
        out: dict[str, Any] = {
            "service": self.service,
            "slo": self.slo,
            "sli_kind": self.sli_kind,
            "group": self.group,
            "window": {
                "start": _iso(self.window_start),
                "end": _iso(self.window_end),
                "spec": self.window,
            },
            "budgeting": self.budgeting,
            "good": _num(self.good),
            "valid": _num(self.valid),
            "sli": _num(self.sli),
            "objective": self.objective,
            "error_budget": {
                "total": _num(b.total),
                "consumed": _num(b.consumed),
                "remaining": _num(b.remaining),
                "remaining_events": _num(b.remaining_events),
                "unit": b.unit,
            },
            "burn_rates": {k: _num(v) for k, v in self.burn_rates.items()},
            "exhaustion": {k: _iso(v) for k, v in self.exhaustion.items()},
            "interval": None
            if self.interval is None
            else {
                "low": _num(self.interval[0]),
                "high": _num(self.interval[1]),
                "confidence": 0.95,
            },
            "data": {"no_data": self.no_data, "too_few_events": self.too_few_events},
        }
        out["annotations"] = [
            {
                "ts": _iso(from_minute(c.marker.minute)),
                "kind": c.marker.kind,
                "text": c.marker.text,
                "until": _iso(from_minute(c.until)),
                "bad": _num(c.bad),
                "valid": _num(c.valid),
                "budget_spent": _num(c.spent),
                "postmortem": c.postmortem,
            }
            for c in self.annotations
        ]
        if timeline:
            out["timeline"] = [{"ts": _iso(t), "remaining": _num(r)} for t, r in self.timeline]
        return out
