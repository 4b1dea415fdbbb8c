"""The contracts file (`apiVersion: slokit/v1`, `kind: contracts`): YAML validated by
pydantic, every problem named by file, line and field, then mapped to plain frozen
dataclasses the SLA computation reads.

    apiVersion: slokit/v1
    kind: contracts
    contracts:
      - name: acme-enterprise
        customer: acme                 # the events' `tenant`
        services: [llm-api]
        commitment: 99.9               # percent, monthly
        measurement: {method: interval_error_rate, interval: 5m}
        credits:
          - {below: 99.9, credit: 10}
          - {below: 99.0, credit: 25}
          - {below: 95.0, credit: 100}
        fee: 12000                     # or {from: usage, markup: 20, minimum: 500}
        currency: USD                  #   or {from: file, path: fees.csv}
        timezone: UTC
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from slokit.core.durations import parse_minutes
from slokit.core.exclusions import Exclusion
from slokit.errors import SpecError
from slokit.sla.fees import FeeFile, FeeRow, read_fee_file
from slokit.spec import v1
from slokit.spec.load import (
    Path_,
    _dotted,
    _error,
    _exclusion,
    _line_of,
    parse_yaml,
    validate_as,
)

METHODS = (
    "interval_error_rate",
    "downtime_minutes",
    "available_minutes",
    "request_based",
    "latency_attainment",
)
OUTCOMES = ("ok", "error", "timeout", "cancelled", "shed", "rate_limited", "client_error")


# -- the file format ------------------------------------------------------------------

CustomerOutcome = Literal["client_error", "rate_limited", "cancelled"]
FailedOutcome = Literal["error", "timeout", "shed"]


def _customer_outcomes() -> list[CustomerOutcome]:
    """Outcomes the customer caused: removed from the measurement by default."""
    return ["client_error", "rate_limited", "cancelled"]


def _failed_outcomes() -> list[FailedOutcome]:
    """Outcomes that count as failures: the service's errors, timeouts, refusals."""
    return ["error", "timeout", "shed"]


class Measurement(v1.Strict):
    method: Literal[
        "interval_error_rate",
        "downtime_minutes",
        "available_minutes",
        "request_based",
        "latency_attainment",
    ]
    interval: v1.Duration = "5m"  # interval_error_rate; latency_attainment per intervals
    period: v1.Duration = "1m"  # downtime_minutes: 1m or 5m periods
    threshold: float = Field(default=5.0, gt=0, le=100)  # percent errors that make a period down
    field_: v1.LATENCY_FIELD = Field(default="latency_ms", alias="field")  # latency_attainment
    threshold_ms: float | None = Field(default=None, gt=0)
    per: Literal["requests", "intervals"] = "requests"
    target: v1.Percent = 99.0  # latency_attainment per intervals: share of requests per interval

    @model_validator(mode="after")
    def _check(self) -> Measurement:
        if self.method == "latency_attainment" and self.threshold_ms is None:
            raise ValueError("latency_attainment needs `threshold_ms`, the latency target")
        if self.method == "downtime_minutes" and parse_minutes(self.period) not in (1, 5):
            raise ValueError(f"`period` is 1m or 5m, got {self.period}")
        return self


def _method_shorthand(value: Any) -> Any:
    return {"method": value} if isinstance(value, str) else value


class CreditTier(v1.Strict):
    below: float = Field(gt=0, le=100)  # uptime percent under which this tier applies
    credit: float  # percent of the month's fee; checked with the ladder


class Maintenance(v1.ExclusionSpec):
    announced: datetime | None = None  # when customers were told


class Incident(v1.Strict):
    start: datetime
    end: datetime
    cause: Literal["force_majeure", "upstream_provider"]
    reason: str = ""


class Preview(v1.Strict):
    models: list[str] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list)


class ContractExclusions(v1.Strict):
    notice: v1.Duration = "3d"  # how far ahead maintenance must be announced to count
    maintenance: list[Maintenance] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list)
    customer_outcomes: list[CustomerOutcome] = Field(default_factory=_customer_outcomes)
    preview: Preview = Preview()
    ignored_backoff: bool = True  # requests with attributes.backoff_ignored = true


FEE_FORMS = (
    "a fee is an amount (`fee: 12000`), billed from usage "
    "(`fee: {from: usage, markup: 20, minimum: 500}`) or read from a fees file "
    "(`fee: {from: file, path: fees.csv}`)"
)
FEE_FIELDS = {"fixed": ("amount",), "usage": ("markup", "minimum"), "file": ("path",)}


class FeeSpec(v1.Strict):
    """`fee: 12000` is short for `{from: fixed, amount: 12000}`."""

    from_: Literal["fixed", "usage", "file"] = Field(alias="from")
    amount: float | None = Field(default=None, ge=0)  # fixed
    markup: float | None = Field(default=None, ge=0)  # usage: percent over the cost
    minimum: float | None = Field(default=None, ge=0)  # usage: the least billed
    path: Annotated[str, Field(min_length=1)] | None = None  # file: relative to this file

    @model_validator(mode="after")
    def _check(self) -> FeeSpec:
        allowed = FEE_FIELDS[self.from_]
        for name in ("amount", "markup", "minimum", "path"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(f"`{name}` does not go with `from: {self.from_}`; {FEE_FORMS}")
        if self.from_ == "fixed" and self.amount is None:
            raise ValueError(f"`from: fixed` needs `amount`; {FEE_FORMS}")
        if self.from_ == "file" and self.path is None:
            raise ValueError(
                "`from: file` needs `path`, a CSV with the columns contract (or customer), "
                "month and fee"
            )
        return self


def _fee_shorthand(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"from": "fixed", "amount": value}
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return {"from": "fixed", "amount": float(value)}
    raise ValueError(f"{FEE_FORMS}; got {value!r}")


class ContractV1(v1.Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]
    customer: Annotated[str, Field(min_length=1)]
    services: Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]
    routes: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    commitment: v1.Percent
    measurement: Annotated[Measurement, BeforeValidator(_method_shorthand)]
    failed_outcomes: list[FailedOutcome] = Field(default_factory=_failed_outcomes)
    credits: list[CreditTier] = Field(min_length=1)
    minimum_credit: float = Field(default=0.0, ge=0)
    claim_deadline: v1.Duration = "30d"
    fee: Annotated[FeeSpec, BeforeValidator(_fee_shorthand)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    timezone: str = "UTC"
    exclusions: ContractExclusions = ContractExclusions()
    internal_slo: str | None = None  # the spec SLO that backs this contract

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


class ContractsFile(v1.Strict):
    api_version: str = Field(alias="apiVersion")
    kind: Literal["contracts"]
    contracts: list[ContractV1] = Field(min_length=1)


# -- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    below: float  # percent
    credit: float  # percent of the fee


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True)
class MaintenanceWindow:
    exclusion: Exclusion
    announced: datetime | None
    counts: bool  # announced at least `notice` ahead
    why: str


@dataclass(frozen=True)
class FeeSource:
    """Where the month's fee comes from."""

    kind: str  # "fixed", "usage" or "file"
    amount: float = 0.0  # fixed
    markup: float = 0.0  # usage: percent over the cost
    minimum: float = 0.0  # usage
    path: str | None = None  # file: as the contract names it (shown in reports)
    file: str | None = None  # file: where it was read (named in errors)
    key: str = "contract"  # file: rows name the contract, or its customer
    months: tuple[tuple[str, FeeRow], ...] = ()  # file: this contract's rows


@dataclass(frozen=True)
class Contract:
    name: str
    customer: str
    services: tuple[str, ...]
    commitment: float  # percent
    method: str
    credits: tuple[Tier, ...]
    fee: FeeSource
    currency: str = "USD"
    timezone: str = "UTC"
    routes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    interval_minutes: int = 5
    period_minutes: int = 1
    threshold: float = 0.05  # fraction
    latency_field: str = "latency_ms"
    latency_threshold_ms: float | None = None
    per: str = "requests"
    target: float = 0.99  # fraction
    failed_outcomes: tuple[str, ...] = ("error", "timeout", "shed")
    customer_outcomes: tuple[str, ...] = ("client_error", "rate_limited", "cancelled")
    preview_models: tuple[str, ...] = ()
    preview_routes: tuple[str, ...] = ()
    ignored_backoff: bool = True
    minimum_credit: float = 0.0
    claim_deadline_minutes: int = 30 * 1440
    notice_minutes: int = 3 * 1440
    maintenance: tuple[MaintenanceWindow, ...] = ()
    incidents: tuple[Window, ...] = ()
    internal_slo: str | None = None
    source: str | None = field(default=None, compare=False)


def load_contracts(path: str | Path) -> list[Contract]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read contracts: {exc.strerror}") from exc
    return loads_contracts(text, str(p))


def loads_contracts(
    text: str, source: str = "<contracts>", *, base: Path | None = None
) -> list[Contract]:
    """Contracts from YAML text; fees files are read relative to `base` (default: the
    directory of `source`)."""
    data, lines = parse_yaml(text, source)
    if not isinstance(data, dict) or data.get("kind") != "contracts":
        raise SpecError(
            f"{source}:1: a contracts file is a mapping with `apiVersion: {v1.API_VERSION}`, "
            "`kind: contracts` and `contracts:`"
        )
    if data.get("apiVersion") != v1.API_VERSION:
        raise SpecError(f"{source}:1: apiVersion: use `apiVersion: {v1.API_VERSION}`")
    parsed = validate_as(ContractsFile, data, lines, source, what="contracts")
    problems = list(_check(parsed, lines))
    if problems:
        raise _error(source, problems, "contracts")
    fee_files = _fee_files(parsed, lines, source, Path(source).parent if base is None else base)
    return [_to_model(c, source, fee_files) for c in parsed.contracts]


def _fee_files(
    f: ContractsFile, lines: dict[Path_, int], source: str, base: Path
) -> dict[str, FeeFile]:
    """Each fees file the contracts name, read once; one that cannot be read is named
    with the contract line that points at it."""
    out: dict[str, FeeFile] = {}
    for i, c in enumerate(f.contracts):
        path = c.fee.path
        if c.fee.from_ != "file" or path is None or path in out:
            continue
        resolved = base / path
        if not resolved.is_file():
            where: Path_ = ("contracts", i, "fee", "path")
            problem = (
                _line_of(where, lines),
                _dotted(where),
                f"no fees file at {resolved}; `path` is relative to the contracts file",
            )
            raise _error(source, [problem], "contracts")
        out[path] = read_fee_file(resolved)
    return out


def _check(f: ContractsFile, lines: dict[Path_, int]) -> list[tuple[int | None, str, str]]:
    from slokit.core.sla import check_ladder

    out: list[tuple[int | None, str, str]] = []
    names = [c.name for c in f.contracts]
    for i, c in enumerate(f.contracts):
        base: Path_ = ("contracts", i)
        if names.count(c.name) > 1:
            where = (*base, "name")
            out.append((_line_of(where, lines), _dotted(where), f"duplicate contract {c.name!r}"))
        for problem in check_ladder([Tier(t.below, t.credit) for t in c.credits]):
            where = (*base, "credits")
            out.append((_line_of(where, lines), _dotted(where), problem))
        if c.credits and max(t.below for t in c.credits) > c.commitment + 1e-12:
            where = (*base, "credits")
            out.append(
                (
                    _line_of(where, lines),
                    _dotted(where),
                    f"a tier starts above the commitment ({c.commitment}%): credits are owed "
                    "only below what was promised",
                )
            )
        if c.fee.from_ == "usage" and c.currency != "USD":
            where = (*base, "fee")
            out.append(
                (
                    _line_of(where, lines),
                    _dotted(where),
                    f"a fee from usage sums the events' cost_usd: the contract's currency "
                    f"must be USD, got {c.currency}",
                )
            )
        for j, inc in enumerate(c.exclusions.incidents):
            if inc.end <= inc.start:
                where = (*base, "exclusions", "incidents", j, "end")
                out.append((_line_of(where, lines), _dotted(where), "`end` must be after `start`"))
    return out


def _aware(t: datetime, tz: str) -> datetime:
    from zoneinfo import ZoneInfo

    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))


def _fee(c: ContractV1, fee_files: dict[str, FeeFile]) -> FeeSource:
    spec = c.fee
    if spec.from_ == "usage":
        return FeeSource("usage", markup=spec.markup or 0.0, minimum=spec.minimum or 0.0)
    if spec.from_ == "file":
        assert spec.path is not None
        table = fee_files[spec.path]
        name = c.name if table.key == "contract" else c.customer
        return FeeSource(
            "file",
            path=spec.path,
            file=table.path,
            key=table.key,
            months=tuple(sorted(table.months(name).items())),
        )
    assert spec.amount is not None
    return FeeSource("fixed", amount=spec.amount)


def _to_model(c: ContractV1, source: str, fee_files: dict[str, FeeFile]) -> Contract:
    m = c.measurement
    x = c.exclusions
    notice = parse_minutes(x.notice)
    windows = []
    for mw in x.maintenance:
        ex = _exclusion(mw)
        announced = None if mw.announced is None else _aware(mw.announced, mw.timezone)
        if announced is None:
            counts, why = False, "never announced"
        else:
            ahead = ex.start - announced
            counts = ahead >= timedelta(minutes=notice)
            hours = ahead.total_seconds() / 3600
            why = (
                f"announced {hours:.0f}h ahead (notice {notice // 60}h)"
                if counts
                else f"announced only {hours:.0f}h ahead; the contract asks for {notice // 60}h"
            )
            if mw.rrule is not None:
                why += "; recurring"
        windows.append(MaintenanceWindow(ex, announced, counts, why))
    return Contract(
        name=c.name,
        customer=c.customer,
        services=tuple(c.services),
        commitment=c.commitment,
        method=m.method,
        credits=tuple(Tier(t.below, t.credit) for t in c.credits),
        fee=_fee(c, fee_files),
        currency=c.currency,
        timezone=c.timezone,
        routes=tuple(c.routes),
        models=tuple(c.models),
        interval_minutes=parse_minutes(m.interval),
        period_minutes=parse_minutes(m.period),
        threshold=round(m.threshold / 100, 12),
        latency_field=m.field_,
        latency_threshold_ms=m.threshold_ms,
        per=m.per,
        target=round(m.target / 100, 12),
        failed_outcomes=tuple(c.failed_outcomes),
        customer_outcomes=tuple(x.customer_outcomes),
        preview_models=tuple(x.preview.models),
        preview_routes=tuple(x.preview.routes),
        ignored_backoff=x.ignored_backoff,
        minimum_credit=c.minimum_credit,
        claim_deadline_minutes=parse_minutes(c.claim_deadline),
        notice_minutes=notice,
        maintenance=tuple(windows),
        incidents=tuple(
            Window(
                _aware(i.start, c.timezone),
                _aware(i.end, c.timezone),
                f"{i.cause.replace('_', ' ')}: {i.reason}".rstrip(": "),
            )
            for i in x.incidents
        ),
        internal_slo=c.internal_slo,
        source=source,
    )
