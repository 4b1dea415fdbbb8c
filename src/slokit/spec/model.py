"""The SLO domain model the engine reads: stable, flat, fractions not percents.

Produced from a versioned spec file by `slokit.spec.load`; every output (statuses,
alerts, rules, reports) is driven by these objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

from slokit.core.exclusions import Exclusion
from slokit.core.windows import Window, calendar, rolling


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # "rolling" | "calendar"
    minutes: int = 0  # rolling length
    unit: str = ""  # calendar unit: week, month, quarter
    timezone: str = "UTC"

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def at(self, minute: int) -> Window:
        if self.kind == "rolling":
            return rolling(minute, self.minutes)
        return calendar(minute, self.unit, self.tz)

    def describe(self) -> str:
        from slokit.core.durations import format_minutes

        if self.kind == "rolling":
            return format_minutes(self.minutes)
        return f"{self.unit} ({self.timezone})"


@dataclass(frozen=True)
class Budgeting:
    method: str = "occurrences"  # occurrences | timeslices | ratio_timeslices
    slice_minutes: int = 5
    slice_target: float = 0.95  # fraction

    @property
    def sliced(self) -> bool:
        return self.method != "occurrences"


@dataclass(frozen=True)
class SLI:
    """Parameters of one SLI; only those of its `kind` are set."""

    kind: str
    field: str | None = None
    threshold_ms: float | None = None
    percentile: float | None = None  # fraction, 0.99
    outcomes: tuple[str, ...] = ()  # valid outcomes for latency kinds
    bad_outcomes: tuple[str, ...] = ()
    excluded_outcomes: tuple[str, ...] = ()
    bounds: tuple[tuple[str, float], ...] = ()
    min_per_second: float | None = None
    unit: str | None = None
    score: str | None = None
    min_samples: int | None = None
    score_threshold: float | None = None
    sources: tuple[str, ...] | None = None
    max_usd: float | None = None
    mean_usd: float | None = None
    tolerance: float | None = None  # fraction
    members: tuple[tuple[str, float], ...] = ()

    @property
    def sampled(self) -> bool:
        return self.kind == "quality"


@dataclass(frozen=True)
class SLO:
    service: str
    name: str
    sli: SLI
    objective: float  # fraction, 0.999
    window: WindowSpec
    budgeting: Budgeting = Budgeting()
    filter: tuple[tuple[str, tuple[str, ...]], ...] = ()
    group_by: tuple[str, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    min_events: int = 10
    description: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def objective_percent(self) -> float:
        return round(self.objective * 100, 10)


@dataclass(frozen=True)
class Spec:
    service: str
    slos: tuple[SLO, ...]
    description: str = ""
    source: str | None = None  # file path, for messages

    def slo(self, name: str) -> SLO:
        for s in self.slos:
            if s.name == name:
                return s
        raise KeyError(name)
