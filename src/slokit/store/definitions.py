"""SLO -> count definition: the SQL that turns raw events into per-minute
good/valid counts for one SLO, per group.

Every SLI kind is additive per minute, so the rollup only ever appends:
- latency_percentile: "p99 <= X in a slice" holds exactly when at least 99% of the
  slice's requests took <= X (the nearest-rank percentile), so it is a latency
  threshold count folded into slices with the percentile as the slice target;
- unit cost: valid = target x successful requests, bad = spend - target x successful,
  both sums (a budget in dollars, DESIGN.md "everything is good/valid counts").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from slokit.spec.model import SLO

NULL_MARK = "\u2205"  # shown for a group label the events did not carry
GROUP_SEP = "\x1f"
MINUTE = "CAST(epoch_us(ts) // 60000000 AS BIGINT)"


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def label_sql(key: str) -> str:
    if key.startswith("attributes."):
        return f"map_extract_value(attributes, {quote(key.removeprefix('attributes.'))})"
    return f'"{key}"'


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def _not_in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} NOT IN ({', '.join(quote(v) for v in values)})" if values else "TRUE"


@dataclass(frozen=True)
class CountDef:
    table: str  # request_events | score_events
    where: str
    group_by: tuple[str, ...]
    good: str
    valid: str
    aux: str = "0"

    @property
    def id(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:16]

    @property
    def group_sql(self) -> str:
        if not self.group_by:
            return "''"
        parts = ", ".join(f"coalesce({label_sql(k)}, {quote(NULL_MARK)})" for k in self.group_by)
        return f"concat_ws(chr(31), {parts})"

    def decode_group(self, key: str) -> dict[str, str | None]:
        if not self.group_by:
            return {}
        values = [None if v == NULL_MARK else v for v in key.split(GROUP_SEP)]
        return dict(zip(self.group_by, values, strict=True))


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def for_slo(slo: SLO) -> CountDef:
    """The count definition of a non-composite SLO."""
    sli = slo.sli
    kind = sli.kind
    where = [f"service = {quote(slo.service)}"]

    def counts(good: str, valid: str, aux: str = "0", table: str = "request_events") -> CountDef:
        return CountDef(table, " AND ".join(where), slo.group_by, good, valid, aux)

    if kind == "quality":
        where.append(f"name = {quote(sli.score or '')}")
        if sli.sources:
            where.append(_in("source", sli.sources))
        passed = "passed" if sli.score_threshold is None else f"(value >= {sli.score_threshold!r})"
        return counts(_flag(passed), _flag(f"{passed} IS NOT NULL"), table="score_events")
    for key, values in slo.filter:
        where.append(_in(label_sql(key), values))
    if kind == "availability":
        valid = _not_in("outcome", sli.excluded_outcomes)
        good = f"{valid} AND {_not_in('outcome', sli.bad_outcomes)}"
    elif kind in ("latency", "latency_percentile"):
        valid = f"{_in('outcome', sli.outcomes)} AND {sli.field} IS NOT NULL"
        good = f"{valid} AND {sli.field} <= {sli.threshold_ms!r}"
    elif kind == "goodput":
        valid = _not_in("outcome", sli.excluded_outcomes)
        bounds = " AND ".join(f"coalesce({f} <= {t!r}, TRUE)" for f, t in sli.bounds)
        good = f"{valid} AND outcome = 'ok' AND {bounds}"
    elif kind == "throughput":
        valid = _not_in("outcome", sli.excluded_outcomes)
        served = "1" if sli.unit == "requests" else "coalesce(output_tokens, 0)"
        return counts(
            good=f"CASE WHEN {valid} AND outcome = 'ok' THEN {served} ELSE 0 END",
            valid=_flag(valid),
            aux=_flag(f"{valid} AND outcome <> 'ok'"),
        )
    elif kind == "cost" and sli.mean_usd is not None:
        target, ok = repr(sli.mean_usd), _flag("outcome = 'ok'")
        return counts(good=f"2 * {target} * {ok} - coalesce(cost_usd, 0)", valid=f"{target} * {ok}")
    elif kind == "cost":
        valid = "cost_usd IS NOT NULL"
        good = f"{valid} AND cost_usd <= {sli.max_usd!r}"
    elif kind == "cold_start":
        valid = "cold_start IS NOT NULL"
        good = "cold_start = FALSE"
    else:
        raise ValueError(f"no count definition for SLI kind {kind!r}")
    return counts(_flag(good), _flag(valid))
