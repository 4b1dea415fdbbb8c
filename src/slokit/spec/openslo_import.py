"""One OpenSLO v1 SLO document -> `slokit/v1` SLOs (one per objective), as plain data.

Indicators whose metricSource is `type: slokit` map back exactly. Any other source
(Prometheus, Datadog, ...) cannot be evaluated from slokit's event store, so it becomes a
default availability SLI with the queries kept in the description, and a note says so.
The mapping is documented in docs/openslo.md.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slokit.core.durations import parse_minutes
from slokit.errors import SpecError
from slokit.spec.openslo_export import BUDGETING, EXCLUSIONS_KEY, MIN_EVENTS_KEY, SOURCE_TYPE, num

ALERTING = "slokit specs have no alerting section yet"
METHODS = {openslo: ours for ours, openslo in BUDGETING.items()}
# OpenSLO duration shorthand: m h d w M Q Y. Calendar windows slokit has, by duration:
CALENDARS = {"1w": "week", "7d": "week", "1M": "month", "1Q": "quarter", "3M": "quarter"}
ALIGNED = {
    "week": "Monday 00:00",
    "month": "the 1st at 00:00",
    "quarter": "1 January, April, July or October at 00:00",
}
ROLLING_DAYS = {"M": 30, "Q": 90, "Y": 365}  # the OpenSLO Go SDK's reading of M, Q, Y
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class Doc:
    """One OpenSLO document; errors about it name it: `SLO/checkout: spec.service: ...`."""

    kind: str
    name: str
    data: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.data.get("spec")
        if not isinstance(spec, dict):
            raise self.fail("spec", "required mapping is missing")
        return spec

    def fail(self, field: str, message: str) -> SpecError:
        return SpecError(f"{self.label}: {field}: {message}")


def slo_to_v1(doc: Doc, slis: dict[str, Doc], notes: list[str]) -> list[dict[str, Any]]:
    """`slokit/v1` SLOs for an OpenSLO SLO document, one per objective."""
    spec = doc.spec
    name = _NOT_NAME.sub("-", doc.name).lstrip("_.-")[:100] or "slo"
    if name != doc.name:
        notes.append(f"{doc.label}: renamed {name!r}; slokit names use letters, digits, _ . -")
    where, indicator = _indicator(doc, spec, slis)
    sources = _sources(where, indicator)
    native = all(src.get("type") == SOURCE_TYPE for _, _, src in sources)
    base: dict[str, Any] = {}
    description = str(spec.get("description") or "")
    if native:
        _, field, first = sources[0]
        body = first.get("spec")
        if not isinstance(body, dict) or not isinstance(body.get("sli"), dict):
            raise where.doc.fail(
                f"{field}.metricSource.spec.sli", "required for a metricSource of type slokit"
            )
        base["sli"] = body["sli"]
        for key in ("filter", "group_by"):
            if body.get(key):
                base[key] = body[key]
    else:
        types = sorted({str(src.get("type") or "untyped") for _, _, src in sources})
        notes.append(
            f"{doc.label}: the {', '.join(types)} indicator was not translated; "
            "imported as a default availability SLI with its queries in the "
            "description; review it"
        )
        base["sli"] = {"availability": {}}
    if spec.get("alertPolicies"):
        notes.append(f"{doc.label}: spec.alertPolicies not imported; {ALERTING}")
    window = _window(doc, spec, notes)
    method = spec.get("budgetingMethod")
    if method not in METHODS:
        raise doc.fail(
            "spec.budgetingMethod", f"expected one of {', '.join(METHODS)}, got {method!r}"
        )
    base.update(_metadata(doc))
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise doc.fail("spec.objectives", "give at least one objective with a `target`")
    out: list[dict[str, Any]] = []
    for i, obj in enumerate(objectives):
        if not isinstance(obj, dict):
            raise doc.fail(f"spec.objectives[{i}]", "expected a mapping")
        slo: dict[str, Any] = {"name": name}
        if len(objectives) > 1:
            suffix = _slug(obj.get("displayName"))
            taken = suffix in {s["name"].removeprefix(f"{name}-") for s in out}
            slo["name"] = f"{name}-{suffix if suffix and not taken else i + 1}"
        text = description if native else _foreign(description, sources, obj)
        if text:
            slo["description"] = text
        target = _target(doc, i, obj)
        cost = base["sli"].get("cost")
        if isinstance(cost, dict) and cost.get("mean_usd") is not None:
            tolerance = cost.get("tolerance")
            if isinstance(tolerance, int | float) and abs(100 - tolerance - target) > 1e-9:
                notes.append(
                    f"{doc.label}: objective target {target:g}% ignored; a unit-cost "
                    "SLO's budget is its tolerance"
                )
        else:
            slo["objective"] = num(target)
        if window is not None:
            slo["window"] = window
        budgeting = _budgeting(doc, i, obj, METHODS[method])
        if budgeting is not None:
            slo["budgeting"] = budgeting
        slo.update(copy.deepcopy(base))
        out.append(slo)
    if len(out) > 1:
        notes.append(
            f"{doc.label}: {len(out)} objectives became {len(out)} slokit SLOs: "
            + ", ".join(s["name"] for s in out)
        )
    return out


@dataclass(frozen=True)
class _Where:
    """Where an indicator was found: an SLI document, or inline in an SLO."""

    doc: Doc
    path: str


def _indicator(doc: Doc, spec: dict[str, Any], slis: dict[str, Doc]) -> tuple[_Where, Any]:
    inline, ref = spec.get("indicator"), spec.get("indicatorRef")
    if inline is not None and ref is not None:
        raise doc.fail("spec", "give `indicator` or `indicatorRef`, not both")
    if ref is not None:
        if ref not in slis:
            known = f"SLIs here: {', '.join(sorted(slis))}" if slis else "it has no SLI documents"
            raise doc.fail("spec.indicatorRef", f"no SLI named {ref!r} in this file ({known})")
        return _Where(slis[ref], "spec"), slis[ref].spec
    if isinstance(inline, dict) and isinstance(inline.get("spec"), dict):
        return _Where(doc, "spec.indicator.spec"), inline["spec"]
    raise doc.fail("spec", "give `indicatorRef` (an SLI's name) or an inline `indicator`")


Source = tuple[str, str, dict[str, Any]]  # role, field path, metricSource


def _sources(where: _Where, indicator: dict[str, Any]) -> list[Source]:
    """Each metric of the indicator: threshold, or good, bad, total, raw."""
    ratio, threshold = indicator.get("ratioMetric"), indicator.get("thresholdMetric")
    if (ratio is None) == (threshold is None):
        raise where.doc.fail(where.path, "give `ratioMetric` or `thresholdMetric`, exactly one")
    if threshold is not None:
        metrics = [("threshold", f"{where.path}.thresholdMetric", threshold)]
    else:
        path = f"{where.path}.ratioMetric"
        if not isinstance(ratio, dict):
            raise where.doc.fail(path, "expected a mapping")
        metrics = [
            (r, f"{path}.{r}", ratio[r]) for r in ("good", "bad", "total", "raw") if ratio.get(r)
        ]
        if not metrics:
            raise where.doc.fail(path, "give `good` or `bad` with `total`, or `raw`")
    out = []
    for role, field, metric in metrics:
        src = metric.get("metricSource") if isinstance(metric, dict) else None
        if not isinstance(src, dict):
            raise where.doc.fail(f"{field}.metricSource", "required mapping is missing")
        out.append((role, field, src))
    return out


def _foreign(description: str, sources: list[Source], objective: dict[str, Any]) -> str:
    lines = [description] if description else []
    lines.append("Imported from OpenSLO; this indicator was not translated, review it:")
    for role, _, src in sources:
        spec = src.get("spec")
        query = (
            spec["query"]
            if isinstance(spec, dict) and list(spec) == ["query"]
            else (json.dumps(spec, sort_keys=True, default=str))
        )
        kind = src.get("type") or "?"
        ref = f", DataSource {src['metricSourceRef']}" if src.get("metricSourceRef") else ""
        lines.append(f"  {role} ({kind}{ref}): {query}")
    if objective.get("op") is not None or objective.get("value") is not None:
        lines.append(f"  objective: {objective.get('op')} {objective.get('value')}")
    return "\n".join(lines)


def _slug(text: Any) -> str:
    return _NOT_NAME.sub("-", str(text or "").lower().replace(" ", "-")).strip("-_.")


def _target(doc: Doc, i: int, obj: dict[str, Any]) -> float:
    """The objective in percent, from `target` (0..1) or `targetPercent` (0..100)."""
    target, pct = obj.get("target"), obj.get("targetPercent")
    field = f"spec.objectives[{i}]"
    if (target is None) == (pct is None):
        raise doc.fail(field, "give `target` (0..1) or `targetPercent` (0..100), exactly one")
    value = pct if pct is not None else target
    if isinstance(value, bool) or not isinstance(value, int | float):
        key = "targetPercent" if pct is not None else "target"
        raise doc.fail(f"{field}.{key}", f"expected a number, got {value!r}")
    percent = round(value if pct is not None else value * 100, 10)
    if not 0 < percent < 100:
        key, shown = ("targetPercent", "0 and 100") if pct is not None else ("target", "0 and 1")
        raise doc.fail(f"{field}.{key}", f"must be strictly between {shown}, got {value!r}")
    return percent


def _budgeting(doc: Doc, i: int, obj: dict[str, Any], method: str) -> dict[str, Any] | None:
    if method == "occurrences":
        return None
    field = f"spec.objectives[{i}]"
    window = obj.get("timeSliceWindow")
    slice_ = f"{window}m" if isinstance(window, int) and not isinstance(window, bool) else window
    try:
        parse_minutes(str(slice_))
    except ValueError:
        raise doc.fail(
            f"{field}.timeSliceWindow",
            f"{window!r} is not a slice slokit can use; give minutes, hours, days or weeks like 5m",
        ) from None
    out: dict[str, Any] = {"method": method, "slice": slice_}
    if method == "timeslices":
        target = obj.get("timeSliceTarget")
        if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
            raise doc.fail(
                f"{field}.timeSliceTarget",
                f"Timeslices needs a number strictly between 0 and 1 (slokit slice targets "
                f"are below 100%), got {target!r}",
            )
        out["slice_target"] = num(round(target * 100, 10))
    return out


def _window(doc: Doc, spec: dict[str, Any], notes: list[str]) -> Any:
    """`30d` or `{calendar: month, timezone: ...}`; None keeps slokit's default window."""
    windows = spec.get("timeWindow")
    if not windows:
        notes.append(f"{doc.label}: no timeWindow; slokit's default (30d rolling) applies")
        return None
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        raise doc.fail("spec.timeWindow", "give a list of exactly one window")
    w, field = windows[0], "spec.timeWindow[0]"
    duration, calendar = str(w.get("duration")), w.get("calendar")
    match = _SHORTHAND.match(duration)
    if not match or int(match.group(1)) == 0:
        raise doc.fail(
            f"{field}.duration",
            f"expected an OpenSLO duration like 30d or 1M, got {w.get('duration')!r}",
        )
    count, unit = int(match.group(1)), match.group(2)
    if w.get("isRolling", calendar is None):
        if unit not in ROLLING_DAYS:
            return duration
        days = f"{count * ROLLING_DAYS[unit]}d"
        notes.append(
            f"{doc.label}: rolling timeWindow {duration} read as {days}; slokit "
            "rolling windows are minutes to weeks"
        )
        return days
    if duration not in CALENDARS:
        raise doc.fail(
            f"{field}.duration",
            f"a calendar window of {duration} has no slokit equivalent; slokit calendar "
            f"windows are {', '.join(CALENDARS)}",
        )
    period = CALENDARS[duration]
    cal = calendar if isinstance(calendar, dict) else {}
    tz = str(cal.get("timeZone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise doc.fail(
            f"{field}.calendar.timeZone",
            f"unknown time zone {tz!r}; use an IANA name like Europe/Berlin",
        ) from None
    start = cal.get("startTime")
    if start is not None and not _aligned(start, period):
        notes.append(
            f"{doc.label}: calendar startTime {start} ignored; slokit {period} "
            f"windows start on {ALIGNED[period]} ({tz})"
        )
    return {"calendar": period, "timezone": tz}


def _aligned(start: Any, period: str) -> bool:
    try:  # YAML reads `2022-01-01 00:00:00` as a datetime already
        moment = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    except ValueError:
        return False
    if (moment.hour, moment.minute, moment.second) != (0, 0, 0):
        return False
    if period == "week":
        return moment.weekday() == 0
    return moment.day == 1 and (period == "month" or moment.month in (1, 4, 7, 10))


def _metadata(doc: Doc) -> dict[str, Any]:
    """min_events, labels and exclusions from metadata; other annotations are not ours."""
    meta = doc.data["metadata"]
    out: dict[str, Any] = {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    for key, value in (("annotations", annotations), ("labels", labels)):
        if not isinstance(value, dict):
            raise doc.fail(f"metadata.{key}", "expected a mapping")
    if MIN_EVENTS_KEY in annotations:
        try:
            out["min_events"] = int(annotations[MIN_EVENTS_KEY])
        except (TypeError, ValueError):
            raise doc.fail(
                f"metadata.annotations.{MIN_EVENTS_KEY}",
                f"expected a whole number, got {annotations[MIN_EVENTS_KEY]!r}",
            ) from None
    if labels:
        out["labels"] = {
            str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in labels.items()
        }
    if EXCLUSIONS_KEY in annotations:
        try:
            exclusions = json.loads(annotations[EXCLUSIONS_KEY])
        except (TypeError, ValueError) as exc:
            raise doc.fail(
                f"metadata.annotations.{EXCLUSIONS_KEY}", f"not a JSON list: {exc}"
            ) from None
        if not isinstance(exclusions, list):
            raise doc.fail(f"metadata.annotations.{EXCLUSIONS_KEY}", "not a JSON list")
        out["exclusions"] = exclusions
    return out
