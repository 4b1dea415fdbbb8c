"""Replay (backtest): run the alert policy over history at every evaluation step, as
the live evaluator would have, and report each alert's fire and resolve times, how
long each annotated incident took to detect, and the budget spent when it fired.

Each SLO group's series is read once for the whole range and its conditions computed
for every step at once (`engine.signals`, the function the live evaluator calls for
one minute); the state machines then step through the ticks in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from slokit.alerting.engine import AlertEngine, Observed, Transition, signals
from slokit.alerting.notification import alert_key
from slokit.core.windows import to_minute
from slokit.engine.evaluate import Evaluator
from slokit.errors import EvaluationError
from slokit.spec.model import Spec
from slokit.store.duckdb_store import DuckDBStore


@dataclass
class Episode:
    """One alert from firing to resolving (or still firing at the end)."""

    key: str
    slo: str
    group: dict[str, str | None]
    severity: str
    reason: str
    fired_at: datetime
    resolved_at: datetime | None
    budget_consumed: float | None  # fraction of the window's budget spent when it fired
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "slo": self.slo,
            "group": self.group,
            "severity": self.severity,
            "reason": self.reason,
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "budget_consumed": self.budget_consumed,
            "windows": self.detail.get("windows"),
            "burn": self.detail.get("long_burn"),
            "threshold": self.detail.get("threshold"),
        }


@dataclass
class Detection:
    """How fast an annotated incident was caught."""

    ts: datetime
    text: str | None
    first_alert: Episode | None
    first_page: Episode | None

    def to_dict(self) -> dict[str, Any]:
        def after(e: Episode | None) -> float | None:
            return None if e is None else (e.fired_at - self.ts).total_seconds() / 60

        return {
            "ts": _iso(self.ts),
            "text": self.text,
            "detected_after_minutes": after(self.first_alert),
            "first_alert": None if self.first_alert is None else self.first_alert.to_dict(),
            "paged_after_minutes": after(self.first_page),
        }


@dataclass
class ReplayReport:
    start: datetime
    end: datetime
    step_seconds: int
    ticks: int
    transitions: list[Transition] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    incidents: list[Detection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": _iso(self.start),
            "to": _iso(self.end),
            "step_seconds": self.step_seconds,
            "ticks": self.ticks,
            "alerts": [e.to_dict() for e in self.episodes],
            "incidents": [d.to_dict() for d in self.incidents],
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def replay(
    spec: Spec,
    store: DuckDBStore,
    start: datetime,
    end: datetime,
    *,
    step_seconds: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Alerts the live evaluator would have raised, ticking every `step_seconds`
    (the spec's `alerting.interval` by default) from `start` to `end`, starting with
    no alert firing."""
    if start.tzinfo is None or end.tzinfo is None:
        raise EvaluationError("replay times must carry a time zone (use UTC)")
    if end <= start:
        raise EvaluationError(f"replay range is empty: --to {end} is not after --from {start}")
    step = step_seconds or spec.alerting.interval_seconds
    n = int((end - start).total_seconds() // step) + 1
    ticks = [start + timedelta(seconds=step * k) for k in range(n)]
    tick_minutes = np.array([to_minute(t) for t in ticks], dtype=np.int64)
    minutes, index_of = np.unique(tick_minutes, return_inverse=True)

    evaluator = Evaluator(spec, store, register=not store.read_only)
    engine = AlertEngine(spec, store, evaluator=evaluator)
    groups: list[tuple[Any, ...]] = []  # (slo, group, series, signals, window valid)
    for slo in spec.slos:
        lo = evaluator.first_minute(slo, slo.window.at(int(minutes[0])))
        hi = int(minutes[-1])
        for group, series in evaluator.group_series(slo, lo, hi):
            sigs = signals(slo, series, minutes)
            if slo.window.kind == "rolling":
                starts = minutes - slo.window.minutes
            else:
                starts = np.array([slo.window.at(int(m)).start for m in minutes], dtype=np.int64)
            _, valid = series.windows(starts, minutes)
            keys = tuple(alert_key(slo.service, slo.name, group, s.name) for s in sigs)
            groups.append((slo, group, series, sigs, valid, keys))
    # a tick can only change something when a condition holds or an alert is active
    busy = np.zeros(len(minutes), dtype=bool)
    for *_, sigs, valid, _keys in groups:
        for s in sigs:
            busy |= s.holds & (valid > 0)

    report = ReplayReport(start, end, step, n)
    for k, now in enumerate(ticks):
        i = int(index_of[k])
        if not busy[i] and not any(a.active for a in engine.alerts.values()):
            continue
        observed = [
            Observed(slo, group, series, sigs, i, int(minutes[i]), keys)
            for slo, group, series, sigs, valid, keys in groups
            if valid[i] > 0
        ]
        transitions, _ = engine.apply(now, observed)
        report.transitions.extend(transitions)
        if progress is not None and k % 1000 == 0:
            progress(k, n)
    if progress is not None:
        progress(n, n)
    report.episodes = episodes(report.transitions)
    report.incidents = detections(store, spec.service, start, end, report.episodes)
    return report


def episodes(transitions: list[Transition]) -> list[Episode]:
    out: list[Episode] = []
    open_: dict[str, Episode] = {}
    for t in transitions:
        a = t.alert
        if t.action == "firing":
            left = (a.detail or {}).get("budget_remaining")
            e = Episode(
                a.key,
                a.slo,
                a.group,
                a.severity,
                a.reason,
                t.at,
                None,
                None if left is None else round(1 - left, 6),
                dict(a.detail or {}),
            )
            open_[a.key] = e
            out.append(e)
        elif a.key in open_:
            open_.pop(a.key).resolved_at = t.at
    return out


def detections(
    store: DuckDBStore, service: str, start: datetime, end: datetime, eps: list[Episode]
) -> list[Detection]:
    notes = store.annotations(service).to_pylist()
    out = []
    for note in notes:
        if note["kind"] != "incident" or not (start <= note["ts"] <= end):
            continue
        after = [e for e in eps if e.fired_at >= note["ts"] and e.reason == "burn"]
        first = min(after, key=lambda e: e.fired_at, default=None)
        page = min(
            (e for e in after if e.severity == "page"), key=lambda e: e.fired_at, default=None
        )
        out.append(Detection(note["ts"], note["text"], first, page))
    return out
