"""The `slokit/v1` spec file format, as pydantic types.

These types describe the YAML a user writes; `slokit.spec.model` is what the engine
reads. Shorthands (`window: 30d`, `budgeting: occurrences`) are expanded here.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from slokit.core.alerting import DEFAULT_MIN_EVENTS
from slokit.core.durations import parse_minutes, parse_seconds
from slokit.core.windows import CALENDAR_UNITS

API_VERSION = "slokit/v1"
OUTCOME = Literal["ok", "error", "timeout", "cancelled", "shed", "rate_limited", "client_error"]
LATENCY_FIELD = Literal["latency_ms", "ttft_ms", "tpot_ms", "itl_max_ms", "queue_ms"]


class Strict(BaseModel):
    """Rejects unknown fields with a "did you mean" hint."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {
                f.alias for f in cls.model_fields.values() if f.alias is not None
            }
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hint = f" — did you mean `{close[0]}`?" if close else ""
                    raise PydanticCustomError(
                        "unknown_field",
                        "unknown field `{field}`{hint} (valid: {valid})",
                        {"field": key, "hint": hint, "valid": ", ".join(sorted(known))},
                    )
        return data


def _duration(value: Any) -> str:
    try:
        parse_minutes(str(value))
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None
    return str(value)


Duration = Annotated[str, BeforeValidator(_duration)]
Percent = Annotated[float, Field(gt=0, lt=100)]


class Availability(Strict):
    bad_outcomes: list[OUTCOME] = ["error", "timeout", "shed"]
    excluded_outcomes: list[OUTCOME] = ["client_error", "cancelled", "rate_limited"]

    @model_validator(mode="after")
    def _disjoint(self) -> Availability:
        both = set(self.bad_outcomes) & set(self.excluded_outcomes)
        if both:
            raise ValueError(
                f"outcomes {sorted(both)} are both bad and excluded; list each in one place"
            )
        if "ok" in self.bad_outcomes or "ok" in self.excluded_outcomes:
            raise ValueError("`ok` is the good outcome; it cannot be bad or excluded")
        return self


class Latency(Strict):
    field: LATENCY_FIELD = "latency_ms"
    threshold_ms: float = Field(gt=0)
    outcomes: list[OUTCOME] = ["ok"]


class LatencyPercentile(Strict):
    field: LATENCY_FIELD = "latency_ms"
    percentile: Percent
    threshold_ms: float = Field(gt=0)
    outcomes: list[OUTCOME] = ["ok"]


class Goodput(Strict):
    bounds: dict[LATENCY_FIELD, Annotated[float, Field(gt=0)]] = Field(min_length=1)
    excluded_outcomes: list[OUTCOME] = ["client_error", "cancelled", "rate_limited"]


class Throughput(Strict):
    min_per_second: float = Field(gt=0)
    unit: Literal["requests", "output_tokens"] = "requests"
    excluded_outcomes: list[OUTCOME] = ["client_error", "cancelled", "rate_limited"]


class Quality(Strict):
    score: str = Field(min_length=1)
    min_samples: int = Field(default=30, ge=1)
    threshold: float | None = None  # when set, passed = value >= threshold
    sources: list[Literal["judge", "human", "check", "feedback"]] | None = None


class Cost(Strict):
    max_usd: float | None = Field(default=None, gt=0)  # per-request threshold
    mean_usd: float | None = Field(default=None, gt=0)  # unit cost per successful request
    tolerance: Percent | None = None  # allowed overspend over mean_usd, the budget

    @model_validator(mode="after")
    def _one_mode(self) -> Cost:
        if (self.max_usd is None) == (self.mean_usd is None):
            raise ValueError(
                "give either `max_usd` (per-request threshold) or `mean_usd` with "
                "`tolerance` (unit cost per successful request)"
            )
        if self.mean_usd is not None and self.tolerance is None:
            raise ValueError("`mean_usd` needs `tolerance`: the overspend in percent you allow")
        if self.max_usd is not None and self.tolerance is not None:
            raise ValueError("`tolerance` goes with `mean_usd`, not `max_usd`")
        return self


class ColdStart(Strict):
    """No parameters: good = not a cold start, valid = cold start known."""


class Member(Strict):
    slo: str
    weight: float = Field(default=1.0, gt=0)


class Composite(Strict):
    members: list[Member] = Field(min_length=1)


SLI_KINDS = (
    "availability",
    "latency",
    "latency_percentile",
    "goodput",
    "throughput",
    "quality",
    "cost",
    "cold_start",
    "composite",
)


class SLI(Strict):
    """Exactly one key, naming the kind: `sli: {latency: {field: ttft_ms, ...}}`."""

    availability: Availability | None = None
    latency: Latency | None = None
    latency_percentile: LatencyPercentile | None = None
    goodput: Goodput | None = None
    throughput: Throughput | None = None
    quality: Quality | None = None
    cost: Cost | None = None
    cold_start: ColdStart | None = None
    composite: Composite | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_bodies(cls, data: Any) -> Any:
        # `availability: {}` and a bare `availability:` (null) both mean defaults.
        if isinstance(data, dict):
            return {
                k: ({} if v is None and k in ("availability", "cold_start") else v)
                for k, v in data.items()
            }
        if isinstance(data, str):
            return {data: {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SLI:
        set_kinds = [k for k in SLI_KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(
                f"give exactly one SLI kind, got {len(set_kinds)}; kinds: {', '.join(SLI_KINDS)}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in SLI_KINDS if getattr(self, k) is not None)


def _window_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return {"calendar": value} if value in CALENDAR_UNITS else {"rolling": value}
    return value


class Window(Strict):
    rolling: Duration | None = None
    calendar: Literal["week", "month", "quarter"] | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one(self) -> Window:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError("give `rolling: 30d` or `calendar: month` (with `timezone`)")
        return self

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from None
        return value


def _budgeting_shorthand(value: Any) -> Any:
    return {"method": value} if isinstance(value, str) else value


class Budgeting(Strict):
    method: Literal["occurrences", "timeslices", "ratio_timeslices"] = "occurrences"
    slice: Duration = "5m"
    slice_target: Percent = 95.0


class ExclusionSpec(Strict):
    start: datetime
    end: datetime | None = None
    duration: Duration | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    reason: str = ""

    @model_validator(mode="after")
    def _shape(self) -> ExclusionSpec:
        if (self.end is None) == (self.duration is None):
            raise ValueError("give `end`, or `duration` (with an optional `rrule`)")
        if self.rrule is not None and self.duration is None:
            raise ValueError("a recurring exclusion (`rrule`) needs `duration`, not `end`")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and (moment.second or moment.microsecond):
                raise ValueError(f"`{name}` must be a whole minute (buckets are minutes)")
        if self.end is not None and self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        return self


def _interval(value: Any) -> str:
    try:
        parse_seconds(str(value))
    except ValueError as exc:
        raise PydanticCustomError("interval", str(exc)) from None
    return str(value)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Severity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]*$", max_length=40)]


class AlertRow(Strict):
    """One multiwindow row: fire when the burn rate over `long` and over `short` both
    exceed `burn`, or the rate that spends `budget` percent of the window's budget
    within `long`."""

    severity: Severity
    long: Duration
    short: Duration
    burn: float | None = Field(default=None, gt=0)
    budget: Percent | None = None
    for_: Duration | None = Field(default=None, alias="for")

    @model_validator(mode="after")
    def _check(self) -> AlertRow:
        if (self.burn is None) == (self.budget is None):
            raise ValueError(
                "give the threshold as `burn: 14.4` or as `budget: 2` (percent of the "
                "window's budget spent within `long`), not both"
            )
        if parse_minutes(self.short) >= parse_minutes(self.long):
            raise ValueError(f"`short` ({self.short}) must be shorter than `long` ({self.long})")
        return self


class SLOAlerting(Strict):
    policy: Literal["default", "none"] | list[AlertRow] = "default"
    min_events: int | None = Field(default=None, ge=1)
    no_data: Duration | Literal["off"] | None = None
    for_: Duration | None = Field(default=None, alias="for")


class Route(Strict):
    severity: Annotated[list[Severity] | None, BeforeValidator(_listify)] = None
    slos: Annotated[list[str] | None, BeforeValidator(_listify)] = None
    receivers: Annotated[list[str], BeforeValidator(_listify), Field(min_length=1)]


class Alerting(Strict):
    interval: Annotated[str, BeforeValidator(_interval)] = "30s"
    link: str | None = None
    min_events: int = Field(default=DEFAULT_MIN_EVENTS, ge=1)
    no_data: Duration | Literal["off"] = "1h"
    no_data_severity: Severity = "ticket"
    for_: Duration | None = Field(default=None, alias="for")
    receivers: dict[str, dict[str, Any]] = {}
    routes: list[Route] = []


class Policy(Strict):
    """The error-budget policy of the service (the SRE workbook's example policy by
    default): freeze when the budget is spent, caution when it runs low."""

    caution_below: float = Field(default=25.0, ge=0, lt=100)
    caution_on_page: bool = True
    freeze_when_exhausted: bool = True
    allow_when_frozen: list[Literal["fix", "security", "feature"]] = ["fix", "security"]
    postmortem_over: Percent = 20.0
    slos: list[str] | None = None


class SLO(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]
    description: str = ""
    sli: SLI
    objective: Percent | None = None
    window: Annotated[Window | None, BeforeValidator(_window_shorthand)] = None
    budgeting: Annotated[Budgeting, BeforeValidator(_budgeting_shorthand)] = Budgeting()
    filter: dict[str, str | list[str]] = {}
    group_by: list[str] = []
    exclusions: list[ExclusionSpec] = []
    min_events: int | None = Field(default=None, ge=1)
    labels: dict[str, str] = {}
    alerting: SLOAlerting = SLOAlerting()


class Defaults(Strict):
    window: Annotated[Window, BeforeValidator(_window_shorthand)] = Window(rolling="30d")
    min_events: int = Field(default=10, ge=1)
    exclusions: list[ExclusionSpec] = []


class SpecV1(Strict):
    api_version: str = Field(alias="apiVersion")
    service: Annotated[str, Field(min_length=1)]
    description: str = ""
    defaults: Defaults = Defaults()
    alerting: Alerting = Alerting()
    policy: Policy = Policy()
    slos: list[SLO] = Field(min_length=1)
