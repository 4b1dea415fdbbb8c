"""The SLO domain model the engine reads: stable, flat, fractions not percents.

Produced from a versioned spec file by `slokit.spec.load`; every output (statuses,
alerts, rules, reports) is driven by these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from slokit.core.alerting import DEFAULT_MIN_EVENTS, WORKBOOK_ROWS, BurnRow
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
class SLOAlerting:
    rows: tuple[BurnRow, ...] = WORKBOOK_ROWS
    min_events: int = DEFAULT_MIN_EVENTS  # valid events a row's long window needs
    no_data_minutes: int | None = 60  # None: no no-data alert
    no_data_severity: str = "ticket"

    @property
    def windows(self) -> set[int]:
        """Every trailing window (minutes) the alert conditions read."""
        out = {m for r in self.rows for m in (r.long, r.short)}
        if self.no_data_minutes:
            out.add(self.no_data_minutes)
        return out


@dataclass(frozen=True)
class Route:
    receivers: tuple[str, ...]
    severities: tuple[str, ...] = ()  # empty: any
    slos: tuple[str, ...] = ()  # empty: any

    def matches(self, slo: str, severity: str) -> bool:
        return (not self.severities or severity in self.severities) and (
            not self.slos or slo in self.slos
        )


@dataclass(frozen=True)
class Alerting:
    interval_seconds: int = 30
    link: str | None = None
    # receiver name -> its config, validated by slokit.alerting.notify
    receivers: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    routes: tuple[Route, ...] = ()

    def receivers_for(self, slo: str, severity: str) -> list[str]:
        """Receivers an alert goes to: those of every matching route, or, with no
        routes at all, every receiver."""
        if not self.routes:
            return sorted(self.receivers)
        names: list[str] = []
        for r in self.routes:
            if r.matches(slo, severity):
                names += [n for n in r.receivers if n not in names]
        return names


@dataclass(frozen=True)
class Policy:
    caution_below: float = 0.25  # fraction of budget remaining
    caution_on_page: bool = True
    freeze_when_exhausted: bool = True
    allow_when_frozen: tuple[str, ...] = ("fix", "security")
    postmortem_over: float = 0.20  # fraction of the window's budget
    slos: tuple[str, ...] = ()  # empty: every SLO of the service


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
    alerting: SLOAlerting = SLOAlerting()

    @property
    def objective_percent(self) -> float:
        return round(self.objective * 100, 10)


@dataclass(frozen=True)
class Spec:
    service: str
    slos: tuple[SLO, ...]
    description: str = ""
    source: str | None = None  # file path, for messages
    alerting: Alerting = Alerting()
    policy: Policy = Policy()

    def slo(self, name: str) -> SLO:
        for s in self.slos:
            if s.name == name:
                return s
        raise KeyError(name)
