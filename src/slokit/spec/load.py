"""Load a spec: read YAML -> check version -> validate the v1 types -> map to the
domain model -> check what spans SLOs. Each step its own function (Sloth's shape).

Every problem is reported as `FILE:LINE: path.to.field: message`, all of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ValidationError

from slokit.core.alerting import WORKBOOK_ROWS, BurnRow
from slokit.core.durations import parse_minutes, parse_seconds
from slokit.core.exclusions import Exclusion
from slokit.errors import SpecError
from slokit.spec import model, v1

M = TypeVar("M", bound=BaseModel)
LABEL_KEYS = ("service", "route", "model", "tier", "tenant", "region", "deployment")
Path_ = tuple[str | int, ...]


def read_source(path: str | Path, what: str) -> tuple[str, str]:
    """(text, source name) of a YAML file, or a SpecError naming it."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except OSError as exc:
        raise SpecError(f"{p}: cannot read {what}: {exc.strerror}") from exc


def load(path: str | Path) -> model.Spec:
    """Read and validate a spec file."""
    text, source = read_source(path, "spec")
    return loads(text, source=source)


def loads(text: str, source: str = "<spec>") -> model.Spec:
    data, lines = parse_yaml(text, source)
    check_version(data, source)
    spec = validate_v1(data, lines, source)
    result = to_model(spec, source)
    problems = list(check_model(result, spec, lines, source))
    if problems:
        raise _error(source, problems)
    return result


# libyaml's parser when PyYAML was built with it (several times faster), else PyYAML's own
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, loader_class: Any) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree (for the lines) and the data built from that tree."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """The document and a map from field path to its 1-based line."""
    try:
        node, data = _parse(text, _LOADER)
    except yaml.YAMLError:
        try:  # PyYAML's own parser says more ("..., but found '-'"): worth a second parse
            node, data = _parse(text, yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpecError(f"{where}: not valid YAML: {problem}") from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            lines[(*path, k)] = key.start_mark.line + 1
            _walk(value, (*path, k), lines)
            lines[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def check_version(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise SpecError(f"{source}:1: a spec is a mapping with `apiVersion`, `service` and `slos`")
    version = data.get("apiVersion")
    if version != v1.API_VERSION:
        hint = (
            "add `apiVersion: slokit/v1` at the top"
            if version is None
            else (
                f"unsupported apiVersion {version!r}; this slokit reads {v1.API_VERSION}"
                " (an OpenSLO file? use `slokit openslo import`)"
            )
        )
        raise SpecError(f"{source}:1: apiVersion: {hint}")


def validate_v1(data: dict[str, Any], lines: dict[Path_, int], source: str) -> v1.SpecV1:
    return validate_as(v1.SpecV1, data, lines, source)


def validate_as(
    cls: type[M], data: Any, lines: dict[Path_, int], source: str, what: str = "spec"
) -> M:
    """`cls.model_validate(data)`, every problem worded as `FILE:LINE: path: message`."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = [_word(err, data, lines) for err in exc.errors()]
        raise _error(source, problems, what) from None


def _word(err: Any, data: Any, lines: dict[Path_, int]) -> tuple[int | None, str, str]:
    """(line, field path, message) for one pydantic error."""
    path = _yaml_path(err["loc"], data)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "unknown_field":
        path = (*path, err["ctx"]["field"])
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "literal_error":
        msg = f"{msg}, got {err['input']!r}"
        close = difflib.get_close_matches(str(err["input"]), _literal_choices(err), n=1)
        if close:
            msg += f" — did you mean `{close[0]}`?"
    elif err["type"] in ("greater_than", "less_than") and path and path[-1] in ("objective",):
        msg = f"must be a percentage strictly between 0 and 100, got {err['input']!r}"
    line = _line_of(path, lines)
    return line, _dotted(path), msg


def _literal_choices(err: Any) -> list[str]:
    expected = err.get("ctx", {}).get("expected", "")
    return [part.strip(" '\"") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _yaml_path(loc: Iterable[Any], data: Any) -> Path_:
    """Keep the loc segments that exist in the document (drops pydantic's union tags)."""
    out: list[str | int] = []
    node = data
    for seg in loc:
        if (isinstance(node, dict) and seg in node) or (
            isinstance(node, list) and isinstance(seg, int) and seg < len(node)
        ):
            out.append(seg)
            node = node[seg]
        elif isinstance(node, dict) and seg not in node and isinstance(seg, str) and "[" not in seg:
            out.append(seg)  # a missing field: name it, it has no line of its own
            node = None
    return tuple(out)


def _line_of(path: Path_, lines: dict[Path_, int]) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _dotted(path: Path_) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "(top)"


def _error(
    source: str, problems: list[tuple[int | None, str, str]], what: str = "spec"
) -> SpecError:
    worded = [
        f"{source}:{line}: {path}: {msg}" if line else f"{source}: {path}: {msg}"
        for line, path, msg in sorted(problems, key=lambda p: (p[0] or 0, p[1]))
    ]
    head = f"{source}: {len(worded)} problem{'s' if len(worded) != 1 else ''} in {what}"
    return SpecError(head + "\n  " + "\n  ".join(worded), worded)


def _exclusion(ex: v1.ExclusionSpec) -> Exclusion:
    tz = ZoneInfo(ex.timezone)
    start = ex.start if ex.start.tzinfo else ex.start.replace(tzinfo=tz)
    if ex.end is not None:
        end = ex.end if ex.end.tzinfo else ex.end.replace(tzinfo=tz)
        minutes = int((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() // 60)
    else:
        assert ex.duration is not None
        minutes = parse_minutes(ex.duration)
    return Exclusion(start=start, duration_minutes=minutes, rrule=ex.rrule, reason=ex.reason)


def _window(w: v1.Window) -> model.WindowSpec:
    if w.rolling is not None:
        return model.WindowSpec("rolling", minutes=parse_minutes(w.rolling))
    assert w.calendar is not None
    return model.WindowSpec("calendar", unit=w.calendar, timezone=w.timezone)


def _sli(s: v1.SLI) -> model.SLI:
    kind = s.kind
    body: Any = getattr(s, kind)
    if kind == "availability":
        return model.SLI(
            kind,
            bad_outcomes=tuple(body.bad_outcomes),
            excluded_outcomes=tuple(body.excluded_outcomes),
        )
    if kind == "latency":
        return model.SLI(
            kind, field=body.field, threshold_ms=body.threshold_ms, outcomes=tuple(body.outcomes)
        )
    if kind == "latency_percentile":
        return model.SLI(
            kind,
            field=body.field,
            threshold_ms=body.threshold_ms,
            percentile=round(body.percentile / 100, 12),
            outcomes=tuple(body.outcomes),
        )
    if kind == "goodput":
        return model.SLI(
            kind,
            bounds=tuple(sorted(body.bounds.items())),
            excluded_outcomes=tuple(body.excluded_outcomes),
        )
    if kind == "throughput":
        return model.SLI(
            kind,
            min_per_second=body.min_per_second,
            unit=body.unit,
            excluded_outcomes=tuple(body.excluded_outcomes),
        )
    if kind == "quality":
        return model.SLI(
            kind,
            score=body.score,
            min_samples=body.min_samples,
            score_threshold=body.threshold,
            sources=tuple(body.sources) if body.sources else None,
        )
    if kind == "cost":
        return model.SLI(
            kind,
            max_usd=body.max_usd,
            mean_usd=body.mean_usd,
            tolerance=None if body.tolerance is None else round(body.tolerance / 100, 12),
        )
    if kind == "composite":
        return model.SLI(kind, members=tuple((m.slo, m.weight) for m in body.members))
    return model.SLI(kind)


def to_model(spec: v1.SpecV1, source: str | None = None) -> model.Spec:
    slos = []
    for s in spec.slos:
        sli = _sli(s.sli)
        objective = s.objective
        if sli.kind == "cost" and sli.mean_usd is not None and sli.tolerance is not None:
            objective = 100 - sli.tolerance * 100  # the tolerance is the budget
        budgeting = model.Budgeting(
            method=s.budgeting.method,
            slice_minutes=parse_minutes(s.budgeting.slice),
            slice_target=round(s.budgeting.slice_target / 100, 12),
        )
        if sli.kind in ("latency_percentile", "throughput") and not budgeting.sliced:
            budgeting = model.Budgeting(
                "timeslices", budgeting.slice_minutes, budgeting.slice_target
            )
        slos.append(
            model.SLO(
                service=spec.service,
                name=s.name,
                sli=sli,
                objective=round((objective or 50.0) / 100, 12),
                window=_window(s.window or spec.defaults.window),
                budgeting=budgeting,
                filter=tuple(
                    (k, tuple(v) if isinstance(v, list) else (v,))
                    for k, v in sorted(s.filter.items())
                ),
                group_by=tuple(s.group_by),
                exclusions=tuple(_exclusion(e) for e in [*spec.defaults.exclusions, *s.exclusions]),
                min_events=s.min_events or spec.defaults.min_events,
                description=s.description,
                labels=tuple(sorted(s.labels.items())),
                alerting=_slo_alerting(s.alerting, spec.alerting),
            )
        )
    return model.Spec(
        service=spec.service,
        slos=tuple(slos),
        description=spec.description,
        source=source,
        alerting=_alerting(spec.alerting),
        policy=_policy(spec.policy),
    )


def _minutes_or_zero(value: str | None) -> int:
    return parse_minutes(value) if value else 0


def _slo_alerting(a: v1.SLOAlerting, defaults: v1.Alerting) -> model.SLOAlerting:
    for_minutes = _minutes_or_zero(a.for_ or defaults.for_)
    if a.policy == "none":
        rows: tuple[BurnRow, ...] = ()
    elif a.policy == "default":
        rows = tuple(replace(r, for_minutes=for_minutes) for r in WORKBOOK_ROWS)
    else:
        rows = tuple(
            BurnRow(
                severity=r.severity,
                long=parse_minutes(r.long),
                short=parse_minutes(r.short),
                budget=None if r.budget is None else round(r.budget / 100, 12),
                burn=r.burn,
                for_minutes=_minutes_or_zero(r.for_) or for_minutes,
            )
            for r in a.policy
        )
    no_data = a.no_data if a.no_data is not None else defaults.no_data
    return model.SLOAlerting(
        rows=rows,
        min_events=a.min_events or defaults.min_events,
        no_data_minutes=None if no_data == "off" or a.policy == "none" else parse_minutes(no_data),
        no_data_severity=defaults.no_data_severity,
    )


def _alerting(a: v1.Alerting) -> model.Alerting:
    return model.Alerting(
        interval_seconds=parse_seconds(a.interval),
        link=a.link,
        receivers=dict(a.receivers),
        routes=tuple(
            model.Route(
                receivers=tuple(r.receivers),
                severities=tuple(r.severity or ()),
                slos=tuple(r.slos or ()),
            )
            for r in a.routes
        ),
    )


def _policy(p: v1.Policy) -> model.Policy:
    return model.Policy(
        caution_below=round(p.caution_below / 100, 12),
        caution_on_page=p.caution_on_page,
        freeze_when_exhausted=p.freeze_when_exhausted,
        allow_when_frozen=tuple(p.allow_when_frozen),
        postmortem_over=round(p.postmortem_over / 100, 12),
        slos=tuple(p.slos or ()),
    )


def _label_ok(key: str) -> bool:
    return key in LABEL_KEYS or (key.startswith("attributes.") and len(key) > len("attributes."))


def check_model(
    spec: model.Spec, raw: v1.SpecV1, lines: dict[Path_, int], source: str
) -> Iterable[tuple[int | None, str, str]]:
    """Checks that span fields or SLOs: names, objectives, labels, composites."""
    names = [s.name for s in spec.slos]
    for i, (slo, rs) in enumerate(zip(spec.slos, raw.slos, strict=True)):
        base: Path_ = ("slos", i)
        if names.count(slo.name) > 1:
            yield (
                _line_of((*base, "name"), lines),
                _dotted((*base, "name")),
                (f"duplicate SLO name {slo.name!r}; names must be unique in a spec"),
            )
        is_unit_cost = slo.sli.kind == "cost" and slo.sli.mean_usd is not None
        if rs.objective is None and not is_unit_cost:
            yield (
                _line_of(base, lines),
                _dotted((*base, "objective")),
                ("required field is missing: the target in percent, like 99.9"),
            )
        if rs.objective is not None and is_unit_cost:
            yield (
                _line_of((*base, "objective"), lines),
                _dotted((*base, "objective")),
                ("a unit-cost SLO takes its budget from `tolerance`; remove `objective`"),
            )
        for key in [k for k, _ in slo.filter] + list(slo.group_by):
            if not _label_ok(key):
                where = (*base, "filter", key) if key in rs.filter else (*base, "group_by")
                close = difflib.get_close_matches(key, LABEL_KEYS, n=1)
                hint = f" — did you mean `{close[0]}`?" if close else ""
                yield (
                    _line_of(where, lines),
                    _dotted(where),
                    (
                        f"unknown label `{key}`{hint}; use one of {', '.join(LABEL_KEYS)} "
                        "or attributes.<key>"
                    ),
                )
        if slo.sli.kind == "quality" and any(k != "service" for k, _ in slo.filter):
            where = (*base, "filter")
            yield (
                _line_of(where, lines),
                _dotted(where),
                (
                    "quality SLIs read score events, which carry no route/model labels; "
                    "filter by score name instead"
                ),
            )
        if (
            slo.budgeting.sliced
            and slo.window.kind == "rolling"
            and (slo.window.minutes % slo.budgeting.slice_minutes)
        ):
            where = (*base, "budgeting", "slice")
            yield (
                _line_of(where, lines),
                _dotted(where),
                ("the slice must divide the window evenly"),
            )
        if slo.budgeting.sliced and 1440 % slo.budgeting.slice_minutes:
            where = (*base, "budgeting", "slice")
            yield (
                _line_of(where, lines),
                _dotted(where),
                ("the slice must divide a day evenly (1m, 5m, 10m, 15m, 30m, 1h, ...)"),
            )
        for m, _w in slo.sli.members:
            where = (*base, "sli", "composite", "members")
            if m not in names:
                close = difflib.get_close_matches(m, names, n=1)
                hint = f" — did you mean `{close[0]}`?" if close else ""
                yield _line_of(where, lines), _dotted(where), f"unknown member SLO `{m}`{hint}"
            elif m == slo.name:
                yield _line_of(where, lines), _dotted(where), "a composite cannot contain itself"
            else:
                member = spec.slo(m)
                if member.sli.kind == "composite":
                    yield (
                        _line_of(where, lines),
                        _dotted(where),
                        (f"member `{m}` is itself a composite; nest members directly"),
                    )
                if member.group_by:
                    yield (
                        _line_of(where, lines),
                        _dotted(where),
                        (f"member `{m}` is grouped; composites combine ungrouped SLOs"),
                    )
        if slo.sli.kind == "composite" and slo.group_by:
            where = (*base, "group_by")
            yield _line_of(where, lines), _dotted(where), "a composite SLO cannot be grouped"

    yield from _check_alerting(spec, names, lines)


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" — did you mean `{close[0]}`?" if close else ""
    return f"unknown {kind} `{name}`{hint} (defined: {', '.join(known) or 'none'})"


def _check_alerting(
    spec: model.Spec, names: list[str], lines: dict[Path_, int]
) -> Iterable[tuple[int | None, str, str]]:
    """Routes name defined receivers and SLOs; receivers are valid; the policy names
    SLOs of the spec."""
    from slokit.alerting.config import receiver_problems

    a = spec.alerting
    for name, problem, path in receiver_problems(a.receivers):
        where: Path_ = ("alerting", "receivers", name, *path)
        yield _line_of(where, lines), _dotted(where), problem
    for i, route in enumerate(a.routes):
        for r in route.receivers:
            if r not in a.receivers:
                where = ("alerting", "routes", i, "receivers")
                yield _line_of(where, lines), _dotted(where), _unknown("receiver", r, a.receivers)
        for s in route.slos:
            if s not in names:
                where = ("alerting", "routes", i, "slos")
                yield _line_of(where, lines), _dotted(where), _unknown("SLO", s, names)
    for s in spec.policy.slos:
        if s not in names:
            where = ("policy", "slos")
            yield _line_of(where, lines), _dotted(where), _unknown("SLO", s, names)
