"""One slokit SLO -> an OpenSLO v1 SLI document and an SLO document, as plain data.

Every indicator is an OpenSLO `metricSource` of `type: slokit` whose `spec` is the slokit
SLI written exactly as in a `slokit/v1` file (plus service, filter and group_by), so an
export imports back to the same SLOs. What OpenSLO v1 has no field for travels in
`metadata.annotations` under `slokit.dev/`. The mapping is documented in docs/openslo.md.
"""

from __future__ import annotations

import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from slokit.core.durations import format_minutes
from slokit.core.exclusions import Exclusion
from slokit.spec import model

API_VERSION = "openslo/v1"
SOURCE_TYPE = "slokit"  # metricSource.type whose spec carries a slokit SLI
EXCLUSIONS_KEY = "slokit.dev/exclusions"  # annotation: JSON list of slokit exclusions
MIN_EVENTS_KEY = "slokit.dev/min-events"  # annotation: slokit's `min_events`
DEFAULT_MIN_EVENTS = 10  # slokit/v1 `defaults.min_events`
BUDGETING = {
    "occurrences": "Occurrences",
    "timeslices": "Timeslices",
    "ratio_timeslices": "RatioTimeslices",
}
CALENDAR_DURATIONS = {"week": "1w", "month": "1M", "quarter": "1Q"}
# OpenSLO wants a start for calendar windows; these are aligned as slokit aligns its
# periods (ISO weeks start on Monday; 2020-01-06 is one), so they import back silently.
CALENDAR_STARTS = {
    "week": "2020-01-06 00:00:00",
    "month": "2020-01-01 00:00:00",
    "quarter": "2020-01-01 00:00:00",
}
# Per-slice threshold kinds become a thresholdMetric with this objective `op`/`value`.
THRESHOLD_KINDS = {
    "latency_percentile": ("lte", "threshold_ms"),
    "throughput": ("gte", "min_per_second"),
}
RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def slo_documents(slo: model.SLO, notes: list[str]) -> list[dict[str, Any]]:
    """The OpenSLO SLI and SLO documents for one slokit SLO."""
    if not RFC1123.match(slo.name):
        notes.append(name_note("SLO", slo.name))
    return [_sli_doc(slo), _slo_doc(slo, notes)]


def name_note(kind: str, name: str) -> str:
    return (
        f"{kind}/{name}: the name is not an RFC 1123 label (lowercase letters, digits "
        "and '-', at most 63); some OpenSLO tools reject it"
    )


def document(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _sli_doc(slo: model.SLO) -> dict[str, Any]:
    if slo.sli.kind in THRESHOLD_KINDS:
        body: dict[str, Any] = {"thresholdMetric": _source(slo, None)}
    else:
        body = {
            "ratioMetric": {
                "counter": False,
                "good": _source(slo, "good"),
                "total": _source(slo, "valid"),
            }
        }
    return document("SLI", {"name": slo.name}, body)


def _source(slo: model.SLO, count: str | None) -> dict[str, Any]:
    """A fresh metricSource each call: shared objects would dump as YAML aliases."""
    spec: dict[str, Any] = {"count": count} if count else {}
    spec["service"] = slo.service
    spec["sli"] = sli_to_v1(slo.sli)
    if slo.filter:
        spec["filter"] = {k: v[0] if len(v) == 1 else list(v) for k, v in slo.filter}
    if slo.group_by:
        spec["group_by"] = list(slo.group_by)
    return {"metricSource": {"type": SOURCE_TYPE, "spec": spec}}


def _slo_doc(slo: model.SLO, notes: list[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": slo.name}
    if slo.labels:
        metadata["labels"] = dict(slo.labels)
    annotations: dict[str, str] = {}
    if slo.exclusions:
        annotations[EXCLUSIONS_KEY] = json.dumps([exclusion_to_v1(e) for e in slo.exclusions])
        n = len(slo.exclusions)
        notes.append(
            f"SLO/{slo.name}: {n} maintenance exclusion{'s' if n != 1 else ''} carried in "
            f"annotation {EXCLUSIONS_KEY}; OpenSLO v1 has no exclusions, so other tools "
            "will count that time"
        )
    if slo.min_events != DEFAULT_MIN_EVENTS:
        annotations[MIN_EVENTS_KEY] = str(slo.min_events)
    if annotations:
        metadata["annotations"] = annotations
    if slo.sli.kind == "composite":
        notes.append(
            f"SLO/{slo.name}: composite SLO exported as a `slokit` metric source; OpenSLO v1 "
            "has no composite SLOs, so only slokit can evaluate it"
        )
    body: dict[str, Any] = {"description": slo.description} if slo.description else {}
    body["service"] = slo.service
    body["indicatorRef"] = slo.name
    body["timeWindow"] = [_window(slo.window)]
    body["budgetingMethod"] = BUDGETING[slo.budgeting.method]
    body["objectives"] = [_objective(slo)]
    return document("SLO", metadata, body)


def _window(w: model.WindowSpec) -> dict[str, Any]:
    # A rolling window's time zone has no effect in slokit and no field in OpenSLO.
    if w.kind == "rolling":
        return {"duration": format_minutes(w.minutes), "isRolling": True}
    return {
        "duration": CALENDAR_DURATIONS[w.unit],
        "isRolling": False,
        "calendar": {"startTime": CALENDAR_STARTS[w.unit], "timeZone": w.timezone},
    }


def _objective(slo: model.SLO) -> dict[str, Any]:
    b = slo.budgeting
    what = f"good {format_minutes(b.slice_minutes)} slices" if b.sliced else "good events"
    out: dict[str, Any] = {"displayName": f"{percent(slo.objective):g}% {what}"}
    if slo.sli.kind in THRESHOLD_KINDS:
        op, attr = THRESHOLD_KINDS[slo.sli.kind]
        out["op"] = op
        out["value"] = num(getattr(slo.sli, attr))
    out["target"] = round(slo.objective, 10)
    if b.method == "timeslices":
        out["timeSliceTarget"] = round(b.slice_target, 10)
    if b.sliced:
        out["timeSliceWindow"] = format_minutes(b.slice_minutes)
    return out


def num(x: float) -> float | int:
    """2000.0 -> 2000, so numbers read as a person would write them."""
    return int(x) if float(x).is_integer() else x


def percent(fraction: float) -> float | int:
    return num(round(fraction * 100, 10))


def sli_to_v1(sli: model.SLI) -> dict[str, Any]:
    """The model SLI as a `slokit/v1` `sli:` block, every parameter explicit."""
    k = sli.kind
    body: dict[str, Any] = {}
    if k in ("latency", "latency_percentile"):
        body["field"] = sli.field
        if sli.percentile is not None:
            body["percentile"] = percent(sli.percentile)
        body["threshold_ms"] = num(sli.threshold_ms or 0)
        body["outcomes"] = list(sli.outcomes)
    elif k == "availability":
        body["bad_outcomes"] = list(sli.bad_outcomes)
    elif k == "goodput":
        body["bounds"] = {name: num(bound) for name, bound in sli.bounds}
    elif k == "throughput":
        body["min_per_second"] = num(sli.min_per_second or 0)
        body["unit"] = sli.unit
    elif k == "quality":
        body["score"] = sli.score
        body["min_samples"] = sli.min_samples
        if sli.score_threshold is not None:
            body["threshold"] = num(sli.score_threshold)
        if sli.sources is not None:
            body["sources"] = list(sli.sources)
    elif k == "cost" and sli.mean_usd is not None:
        body["mean_usd"] = num(sli.mean_usd)
        body["tolerance"] = percent(sli.tolerance or 0)
    elif k == "cost":
        body["max_usd"] = num(sli.max_usd or 0)
    elif k == "composite":
        body["members"] = [{"slo": m, "weight": num(w)} for m, w in sli.members]
    if k in ("availability", "goodput", "throughput"):
        body["excluded_outcomes"] = list(sli.excluded_outcomes)
    return {k: body}


def exclusion_to_v1(e: Exclusion) -> dict[str, Any]:
    """A model exclusion as a `slokit/v1` exclusion; a named zone stays named (DST)."""
    out: dict[str, Any] = {}
    if isinstance(e.start.tzinfo, ZoneInfo):
        out["start"] = e.start.replace(tzinfo=None).isoformat()
        out["timezone"] = e.start.tzinfo.key
    else:
        out["start"] = e.start.isoformat().replace("+00:00", "Z")
    out["duration"] = format_minutes(e.duration_minutes)
    if e.rrule is not None:
        out["rrule"] = e.rrule
    if e.reason:
        out["reason"] = e.reason
    return out


class _Dumper(yaml.SafeDumper):
    """Safe dumping, multi-line strings as `|` blocks, never anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(docs: list[dict[str, Any]], *, explicit_start: bool = True) -> str:
    """Documents in the order their keys were built, each starting with `---`."""
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=False,
        explicit_start=explicit_start,
        allow_unicode=True,
        width=1000,
    )
