"""Contracts -> per-minute counts from the store -> each contract's own measurement
method -> uptime, tier and credit, with the exclusions that were applied and why.

Contracts that measure the same way share one scan of the store (`counts.scan`), so a
hundred customers' month reads the events once, not a hundred times. The month's fee
is fixed, a fees file's row for the month, or billed from usage, which the same scan
sums.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from slokit.core import sla
from slokit.core.exclusions import mask
from slokit.core.windows import from_minute, to_minute
from slokit.errors import InputError, SpecError
from slokit.sla.contract import Contract
from slokit.sla.counts import latency_target, scan, signature
from slokit.store.duckdb_store import DuckDBStore


@dataclass
class SLAResult:
    contract: Contract
    month: str  # 2026-10
    start: datetime  # the billing month, in the contract's time zone
    end: datetime
    as_of: datetime  # end of the measured part (the month's end, or now)
    measurement: sla.Measurement
    credit: sla.Credit
    fee: sla.Fee  # the month's fee the credit is a percent of
    requests: dict[str, float]  # counted, failed, and each kind of excluded request
    exclusions: list[dict[str, Any]]  # every exclusion considered, applied or not, and why
    projection: dict[str, Any] | None = None  # for a month in progress
    warnings: list[str] = field(default_factory=list)

    @property
    def in_progress(self) -> bool:
        return self.as_of < self.end

    def to_dict(self) -> dict[str, Any]:
        c, m, cr = self.contract, self.measurement, self.credit
        starts = _iso_utc([p.start for p in m.periods])
        return {
            "contract": c.name,
            "customer": c.customer,
            "services": list(c.services),
            "month": self.month,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "in_progress": self.in_progress,
            "commitment": c.commitment,
            "method": c.method,
            "uptime": round(m.uptime, 6),
            "met": m.uptime >= c.commitment,
            "good": m.good,
            "total": m.total,
            "unit": m.unit,
            "formula": m.describe(),
            "tier": None if cr.tier is None else {"below": cr.tier.below, "credit": cr.tier.credit},
            "credit_percent": cr.percent,
            "credit": float(cr.amount),
            "fee": float(self.fee.amount),
            "fee_source": self.fee.source,
            "currency": c.currency,
            "credit_steps": list(cr.steps),
            "claim_deadline": from_minute(
                to_minute(self.end) + c.claim_deadline_minutes
            ).isoformat(),
            "requests": self.requests,
            "exclusions": self.exclusions,
            "downtime": [
                {
                    "start": start,
                    "minutes": minutes,
                    "requests": requests,
                    "failed": failed,
                    "error_rate": rate,
                    "excluded_minutes": excluded,
                }
                for start, (_, minutes, requests, failed, rate, excluded) in zip(
                    starts, m.periods, strict=True
                )
            ],
            "daily": [
                {
                    "day": from_minute(d).astimezone(ZoneInfo(c.timezone)).date().isoformat(),
                    "uptime": u,
                }
                for d, u in m.daily
            ],
            "projection": self.projection,
            "warnings": self.warnings,
        }


def _iso_utc(minutes: list[int]) -> list[str]:
    """`from_minute(m).isoformat()` of many epoch minutes at once: a month's evidence can
    hold tens of thousands of intervals, and datetime objects cost a microsecond each."""
    text = np.datetime_as_string(np.asarray(minutes, dtype=np.int64).astype("datetime64[m]"), "s")
    return [f"{t}+00:00" for t in text.tolist()]


def parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(x) for x in text.split("-"))
        if not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise InputError(f"month {text!r}: use YYYY-MM, like 2026-10") from None
    return year, month


def compute(
    store: DuckDBStore,
    contracts: list[Contract],
    month: str,
    *,
    now: datetime | None = None,
    internal: dict[str, float] | None = None,
) -> list[SLAResult]:
    """Every contract's month. `now` cuts a month in progress (default: the month is
    measured to its end); `internal` maps SLO names to objectives (percent) for the
    SLO-vs-SLA buffer warning."""
    year, mon = parse_month(month)
    # a month missing from a fees file fails before any scan
    file_fees = {c.name: _file_fee(c, month) for c in contracts if c.fee.kind == "file"}
    groups: dict[tuple[Any, ...], list[Contract]] = defaultdict(list)
    for c in contracts:
        groups[signature(c)].append(c)
    results: dict[str, SLAResult] = {}
    for members in groups.values():
        spans = {c.name: sla.month_minutes(year, mon, ZoneInfo(c.timezone)) for c in members}
        lo = min(s[0] for s in spans.values())
        hi = max(s[1] for s in spans.values())
        targets = list(dict.fromkeys(t for c in members if (t := latency_target(c))))
        usage = any(c.fee.kind == "usage" for c in members)
        by_customer = scan(store, members, lo, hi, targets, usage=usage)
        for c in members:
            mine = by_customer.get(c.customer)
            target = latency_target(c)
            if mine is not None and target is not None:  # this contract's latency target
                mine = {**mine, "slow": mine[f"slow_{targets.index(target)}"]}
            fee = file_fees.get(c.name)
            results[c.name] = _one(c, month, spans[c.name], mine, now, internal, fee)
    return [results[c.name] for c in contracts]


def _file_fee(c: Contract, month: str) -> sla.Fee:
    row = dict(c.fee.months).get(month)
    if row is None:
        by_contract = c.fee.key == "contract"
        who = c.name if by_contract else c.customer
        named = f"contract {c.name!r}" if by_contract else f"customer {who!r} (contract {c.name!r})"
        raise SpecError(
            f"{c.fee.file}: no fee for {named} in {month}: add a row `{who},{month},AMOUNT`"
        )
    return sla.Fee(row.fee, f"fees file {c.fee.path}, line {row.line}")


def _one(
    c: Contract,
    month: str,
    span: tuple[int, int],
    rows: dict[str, np.ndarray] | None,
    now: datetime | None,
    internal: dict[str, float] | None,
    file_fee: sla.Fee | None = None,
) -> SLAResult:
    lo, hi = span
    cut = hi if now is None else max(lo, min(hi, to_minute(now)))
    n = cut - lo
    arrays: dict[str, np.ndarray] = {k: np.zeros(n) for k in ("total", "failed", "slow")}
    removed = {"customer_caused": 0.0, "preview": 0.0, "ignored_backoff": 0.0}
    covered, unpriced, cost = 0, 0, Decimal(0)  # for a fee from usage
    if rows is not None and n > 0:
        inside = (rows["minute"] >= lo) & (rows["minute"] < cut)
        idx = (rows["minute"][inside] - lo).astype(np.int64)
        for k in arrays:  # `slow` is there for a contract with a latency target
            if k in rows:
                arrays[k] = np.bincount(idx, weights=rows[k][inside].astype(float), minlength=n)
        for k in removed:
            removed[k] = float(rows[k][inside].sum())
        if c.fee.kind == "usage":
            covered = int(rows["covered"][inside].sum())
            unpriced = int(rows["unpriced"][inside].sum())
            cost = sum(rows["cost"][inside].tolist(), Decimal(0))
    counted = [m.exclusion for m in c.maintenance if m.counts]
    excluded = mask(counted, lo, cut) if counted else np.zeros(n, dtype=bool)
    for inc in c.incidents:
        a, b = max(to_minute(inc.start), lo), min(to_minute(inc.end), cut)
        if b > a:
            excluded[a - lo : b - lo] = True
    tz = ZoneInfo(c.timezone)
    counts = sla.MinuteCounts(lo, arrays["total"], arrays["failed"], arrays["slow"], excluded)
    days = sla.local_days(lo, cut, tz)
    measurement = measure(c, counts, days)
    if c.fee.kind == "usage":
        fee = sla.usage_fee(
            cost,
            covered,
            unpriced,
            markup=c.fee.markup,
            minimum=c.fee.minimum,
            currency=c.currency,
        )
    elif file_fee is not None:
        fee = file_fee
    else:
        fee = sla.Fee(Decimal(repr(c.fee.amount)), "fixed monthly fee")
    credit = sla.credit_for(
        measurement.uptime, list(c.credits), fee.amount, minimum_credit=c.minimum_credit
    )
    in_excluded = excluded.astype(bool)
    requests = {
        "counted": float(arrays["total"][~in_excluded].sum()),
        "failed": float(arrays["failed"][~in_excluded].sum()),
        "in_excluded_time": float(arrays["total"][in_excluded].sum()),
        **removed,
    }
    result = SLAResult(
        contract=c,
        month=month,
        start=from_minute(lo).astimezone(tz),
        end=from_minute(hi).astimezone(tz),
        as_of=from_minute(cut).astimezone(tz),
        measurement=measurement,
        credit=credit,
        fee=fee,
        requests=requests,
        exclusions=_exclusion_notes(c, lo, cut, removed),
    )
    if unpriced:
        result.warnings.append(
            f"{unpriced:,} of the {covered:,} covered requests had no price "
            "(cost_usd empty) and count as 0 in the usage fee: price requests as they are "
            "stored with `slokit ingest --prices FILE`"
        )
    if cut < hi:
        result.projection = _projection(c, measurement, credit, fee, cut - lo, hi - lo)
    if internal is not None and c.internal_slo is not None:
        objective = internal.get(c.internal_slo)
        if objective is None:
            result.warnings.append(f"internal SLO {c.internal_slo!r} is not in the spec")
        elif objective <= c.commitment:
            result.warnings.append(
                f"the internal objective of {c.internal_slo} ({objective}%) is not stricter "
                f"than the {c.commitment}% this contract commits to: no buffer before credits"
            )
    return result


def measure(c: Contract, counts: sla.MinuteCounts, days: np.ndarray) -> sla.Measurement:
    if c.method == "interval_error_rate":
        return sla.interval_error_rate(counts, c.interval_minutes, day_starts=days)
    if c.method == "downtime_minutes":
        return sla.downtime_minutes(counts, c.period_minutes, c.threshold, day_starts=days)
    if c.method == "available_minutes":
        return sla.available_minutes(counts, c.threshold, day_starts=days)
    if c.method == "request_based":
        return sla.request_based(counts, day_starts=days)
    return sla.latency_attainment(
        counts, per=c.per, interval=c.interval_minutes, target=c.target, day_starts=days
    )


def _exclusion_notes(
    c: Contract, lo: int, hi: int, removed: dict[str, float]
) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    for m in c.maintenance:
        for a, b in m.exclusion.ranges(lo, hi):
            notes.append(
                {
                    "kind": "maintenance",
                    "start": from_minute(a).isoformat(),
                    "end": from_minute(b).isoformat(),
                    "minutes": b - a,
                    "applied": m.counts,
                    "reason": f"{m.exclusion.reason} ({m.why})".strip(),
                }
            )
    for inc in c.incidents:
        a, b = max(to_minute(inc.start), lo), min(to_minute(inc.end), hi)
        if b > a:
            notes.append(
                {
                    "kind": "incident",
                    "start": from_minute(a).isoformat(),
                    "end": from_minute(b).isoformat(),
                    "minutes": b - a,
                    "applied": True,
                    "reason": inc.reason,
                }
            )
    labels = {
        "customer_caused": "customer-caused requests ("
        + ", ".join(c.customer_outcomes)
        + ") removed from the measurement",
        "preview": "requests to preview features removed",
        "ignored_backoff": "requests that ignored back-off (attributes.backoff_ignored) removed",
    }
    for key, count in removed.items():
        if count:
            notes.append({"kind": key, "requests": count, "applied": True, "reason": labels[key]})
    return notes


def _projection(
    c: Contract, m: sla.Measurement, credit: sla.Credit, fee: sla.Fee, elapsed: int, length: int
) -> dict[str, Any]:
    """At the current rate the month ends where it stands; at best, every remaining
    minute is perfect."""
    share = elapsed / length if length else 1.0
    best = 100.0 - (100.0 - m.uptime) * share
    at_best = sla.credit_for(best, list(c.credits), fee.amount, minimum_credit=c.minimum_credit)
    return {
        "elapsed_share": round(share, 6),
        "uptime_at_current_rate": round(m.uptime, 6),
        "credit_at_risk": float(credit.amount),
        "best_case_uptime": round(best, 6),
        "best_case_credit": float(at_best.amount),
        "summary": (
            f"at the current rate, credits at risk this month: {float(credit.amount):,.2f} "
            f"{c.currency} ({credit.percent:g}% of {fee.amount:,.2f})"
        ),
    }
