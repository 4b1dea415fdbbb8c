"""The alert evaluator: statuses from the engine -> alert conditions -> the state
machine of every (SLO, group, severity) -> transitions to announce.

One `tick(now)` is one evaluation step. The live evaluator in `slokit serve` and
`slokit alerts replay` both run exactly this, so a replay over history reproduces
what the live evaluator did over the same data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from slokit.alerting.notification import Notification, alert_key
from slokit.core.alerting import (
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    AlertState,
    RowSignal,
    quiet,
    row_signals,
    step,
)
from slokit.core.assess import assess
from slokit.core.durations import format_minutes
from slokit.core.series import Series
from slokit.core.windows import to_minute
from slokit.engine.evaluate import Evaluator
from slokit.engine.status import Status
from slokit.spec.model import SLO, Spec
from slokit.store.duckdb_store import DuckDBStore

NO_DATA = "no_data"


@dataclass(frozen=True)
class Alert:
    """One tracked alert and what it last saw."""

    key: str
    service: str
    slo: str
    group: dict[str, str | None]
    severity: str
    reason: str  # "burn" | "no_data"
    state: AlertState
    updated_at: datetime | None = None
    detail: dict[str, Any] | None = None  # burn rates, threshold, windows, budget

    @property
    def active(self) -> bool:
        return self.state.state in (PENDING, FIRING)

    def to_row(self) -> dict[str, Any]:
        s = self.state
        return {
            "key": self.key,
            "service": self.service,
            "slo": self.slo,
            "grp": json.dumps(self.group, sort_keys=True),
            "severity": self.severity,
            "reason": self.reason,
            "state": s.state,
            "pending_since": s.pending_since,
            "fired_at": s.fired_at,
            "resolved_at": s.resolved_at,
            "updated_at": self.updated_at,
            "detail": json.dumps(self.detail or {}, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        return cls(
            key=row["key"],
            service=row["service"],
            slo=row["slo"],
            group=json.loads(row["grp"]),
            severity=row["severity"],
            reason=row["reason"],
            state=AlertState(
                row["state"], row["pending_since"], row["fired_at"], row["resolved_at"]
            ),
            updated_at=row["updated_at"],
            detail=json.loads(row["detail"] or "{}"),
        )

    def to_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "key": self.key,
            "service": self.service,
            "slo": self.slo,
            "group": self.group,
            "severity": self.severity,
            "reason": self.reason,
            "state": s.state,
            "pending_since": _iso(s.pending_since),
            "fired_at": _iso(s.fired_at),
            "resolved_at": _iso(s.resolved_at),
            "updated_at": _iso(self.updated_at),
            "detail": self.detail or {},
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Transition:
    at: datetime
    action: str  # "firing" | "resolved"
    alert: Alert
    notification: Notification
    receivers: tuple[str, ...]

    def to_log_row(self) -> dict[str, Any]:
        a = self.alert
        return {
            "ts": self.at,
            "key": a.key,
            "action": self.action,
            "service": a.service,
            "slo": a.slo,
            "grp": json.dumps(a.group, sort_keys=True),
            "severity": a.severity,
            "reason": a.reason,
            "detail": json.dumps(a.detail or {}, sort_keys=True),
        }


@dataclass(frozen=True)
class Tick:
    at: datetime
    statuses: list[Status]
    transitions: list[Transition]
    changed: list[Alert]  # alerts whose state row changed (to persist)


@dataclass(frozen=True)
class Signal:
    """One alert condition of one SLO group over evaluation minutes: a severity of
    its burn rows, or no-data."""

    name: str  # the severity, or "no_data"
    severity: str
    reason: str
    holds: NDArray[np.bool_]
    for_minutes: int
    rows: tuple[RowSignal, ...] = ()
    quiet_minutes: int | None = None


@dataclass(frozen=True)
class Observed:
    """An SLO group's series and signals, and which evaluation minute to read."""

    slo: SLO
    group: dict[str, str | None]
    series: Series
    signals: list[Signal]
    index: int
    minute: int
    keys: tuple[str, ...] = ()  # alert_key of each signal, when already known

    def key(self, j: int) -> str:
        if self.keys:
            return self.keys[j]
        return alert_key(self.slo.service, self.slo.name, self.group, self.signals[j].name)


def signals(slo: SLO, series: Series, minutes: NDArray[np.int64]) -> list[Signal]:
    """Every alert condition of `slo` at each evaluation minute. The live evaluator
    asks for one minute, replay for many: the same arithmetic either way."""
    a = slo.alerting
    if slo.window.kind == "rolling":
        ends = minutes
        starts = minutes - slo.window.minutes
        lengths = np.full(len(minutes), slo.window.minutes)
    else:
        windows = [slo.window.at(int(m)) for m in minutes]
        ends = np.array([w.end for w in windows], dtype=np.int64)
        starts = np.array([w.start for w in windows], dtype=np.int64)
        lengths = np.array([w.length for w in windows], dtype=np.int64)
    out: list[Signal] = []
    # slice-budgeted series count slices, not events: the event minimum does not apply
    min_events = 1 if series.step > 1 or slo.budgeting.sliced else a.min_events
    rows = row_signals(a.rows, series, ends, lengths, slo.objective, min_events)
    for severity in dict.fromkeys(r.row.severity for r in rows):
        mine = tuple(r for r in rows if r.row.severity == severity)
        holds = np.logical_or.reduce([r.holds for r in mine])
        out.append(Signal(severity, severity, "burn", holds, mine[0].row.for_minutes, mine))
    if a.no_data_minutes:
        holds = quiet(series, starts, ends, a.no_data_minutes)
        out.append(Signal(NO_DATA, a.no_data_severity, NO_DATA, holds, 0, (), a.no_data_minutes))
    return out


class AlertEngine:
    """Holds every alert's state between ticks; `alerts` may be loaded from the store
    so a restarted server neither re-pages a firing alert nor forgets it."""

    def __init__(
        self,
        spec: Spec,
        store: DuckDBStore,
        *,
        alerts: Iterable[Alert] = (),
        evaluator: Evaluator | None = None,
    ) -> None:
        self.spec = spec
        self.evaluator = evaluator or Evaluator(spec, store)
        self.alerts: dict[str, Alert] = {a.key: a for a in alerts}
        self._slos = {s.name: s for s in spec.slos}

    @classmethod
    def from_store(cls, spec: Spec, store: DuckDBStore, **kw: Any) -> AlertEngine:
        return cls(spec, store, alerts=[Alert.from_row(r) for r in store.alert_states()], **kw)

    def firing(self) -> list[Alert]:
        return sorted(
            (a for a in self.alerts.values() if a.state.state == FIRING),
            key=lambda a: (a.slo, a.severity, a.key),
        )

    def tick(self, now: datetime) -> Tick:
        """One live evaluation step at `now`."""
        statuses = self.evaluator.evaluate(now)
        minute = to_minute(now)
        at = np.array([minute], dtype=np.int64)
        observed = [
            Observed(slo, st.group, st.series, signals(slo, st.series, at), 0, minute)
            for st in statuses
            if st.series is not None and st.valid > 0
            for slo in (self._slos[st.slo],)
        ]
        transitions, changed = self.apply(now, observed)
        return Tick(now, statuses, transitions, changed)

    def apply(
        self, now: datetime, observed: Iterable[Observed]
    ) -> tuple[list[Transition], list[Alert]]:
        """Advance every alert's state machine by one step at `now`. An SLO group not
        observed (no events in its window any more) no longer holds anything."""
        seen: set[str] = set()
        transitions: list[Transition] = []
        changed: list[Alert] = []
        for ob in observed:
            for j, sig in enumerate(ob.signals):
                key = ob.key(j)
                seen.add(key)
                holds = bool(sig.holds[ob.index])
                old = self.alerts.get(key)
                if old is None and not holds:
                    continue
                base = old or Alert(
                    key,
                    ob.slo.service,
                    ob.slo.name,
                    ob.group,
                    sig.severity,
                    sig.reason,
                    AlertState(),
                )
                self._advance(base, holds, now, sig.for_minutes, (ob, sig), transitions, changed)
        for key, old in list(self.alerts.items()):
            if key not in seen and old.active:
                self._advance(old, False, now, 0, None, transitions, changed)
        return transitions, changed

    def _advance(
        self,
        alert: Alert,
        holds: bool,
        now: datetime,
        for_minutes: int,
        source: tuple[Observed, Signal] | None,
        transitions: list[Transition],
        changed: list[Alert],
    ) -> None:
        new_state, action = step(alert.state, holds, now, for_minutes)
        if new_state == alert.state:
            return
        # the numbers are taken when the state changes: what it fired on, what it
        # resolved on
        detail = _detail(*source) if source else alert.detail
        new = replace(alert, state=new_state, updated_at=now, detail=detail)
        self.alerts[new.key] = new
        changed.append(new)
        if action is not None:
            receivers = tuple(self.spec.alerting.receivers_for(new.slo, new.severity))
            transitions.append(
                Transition(now, action, new, self.notification(new, action, now), receivers)
            )

    def notification(self, alert: Alert, action: str, now: datetime) -> Notification:
        """The notification of `alert` for `action` (firing or resolved) at `now`."""
        d = alert.detail or {}
        slo = self._slos.get(alert.slo)
        return Notification(
            action="firing" if action == FIRING else "resolved",
            key=alert.key,
            service=alert.service,
            slo=alert.slo,
            group=alert.group,
            severity=alert.severity,
            reason=alert.reason,
            summary=_summary(alert, action),
            started_at=alert.state.fired_at or now,
            at=now,
            objective=float(d.get("objective", slo.objective_percent if slo else 0.0)),
            sli=d.get("sli"),
            budget_remaining=d.get("budget_remaining"),
            burn_rates=d.get("burn_rates", {}),
            windows=tuple(d["windows"]) if d.get("windows") else None,
            threshold=d.get("threshold"),
            link=self.spec.alerting.link,
            labels=dict(slo.labels) if slo else {},
        )


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _detail(ob: Observed, sig: Signal) -> dict[str, Any]:
    """The numbers behind a state change, at the evaluation minute."""
    slo, i = ob.slo, ob.index
    window = slo.window.at(ob.minute)
    a = assess(ob.series, window, slo.objective)
    out: dict[str, Any] = {
        "minute": ob.minute,
        "objective": slo.objective_percent,
        "sli": None if a.sli is None else _num(a.sli * 100),
        "budget_remaining": _num(a.budget.remaining),
        "burn_rates": {k: _num(v) for k, v in a.burn_rates.items()},
    }
    if sig.rows:
        r = next((r for r in sig.rows if r.holds[i]), None) or max(
            sig.rows, key=lambda r: float(np.nan_to_num(r.long_burn[i] / r.threshold[i]))
        )
        out.update(
            windows=[format_minutes(r.row.long), format_minutes(r.row.short)],
            threshold=_num(r.threshold[i]),
            long_burn=_num(r.long_burn[i]),
            short_burn=_num(r.short_burn[i]),
            long_valid=_num(r.long_valid[i]),
        )
    if sig.quiet_minutes:
        out["quiet_minutes"] = sig.quiet_minutes
    return out


def _summary(alert: Alert, action: str) -> str:
    group = ",".join(f"{k}={v}" for k, v in sorted(alert.group.items()))
    name = f"{alert.service}/{alert.slo}" + (f"{{{group}}}" if group else "")
    d = alert.detail or {}
    if action == RESOLVED:
        return f"resolved: {name} {alert.severity} ({alert.reason})"
    if alert.reason == NO_DATA:
        return f"{name}: no events for {d.get('quiet_minutes', '?')} minutes"
    windows = d.get("windows") or ["?", "?"]
    left = d.get("budget_remaining")
    budget = f"; {left * 100:.1f}% of the error budget left" if left is not None else ""
    return (
        f"{name}: burn rate {d.get('long_burn') or 0:.1f}x over {windows[0]} and "
        f"{d.get('short_burn') or 0:.1f}x over {windows[1]} "
        f"(threshold {d.get('threshold') or 0:.2f}){budget}"
    )


Saver = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]


def persist(tick: Tick, save: Saver) -> None:
    """Write a tick's changed alerts and transitions (through the store's writer)."""
    if tick.changed or tick.transitions:
        save([a.to_row() for a in tick.changed], [t.to_log_row() for t in tick.transitions])


__all__ = [
    "FIRING",
    "INACTIVE",
    "NO_DATA",
    "PENDING",
    "RESOLVED",
    "Alert",
    "AlertEngine",
    "Tick",
    "Transition",
    "persist",
]
