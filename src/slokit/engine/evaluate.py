"""spec + store + time -> statuses.

The store gives sparse per-minute counts per group; this module turns them into dense
series (zeroing excluded minutes), folds them into slices where the SLO budgets by
time slices, combines composites, and hands each series to `core.assess`.

An `Evaluator` keeps the counts it has read and, on the next evaluation, asks the
store only for batches ingested since: a re-evaluation after a minute of new traffic
reads that minute, not the month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from slokit.core import exclusions, timeslices
from slokit.core.annotation_cost import Marker, interval_costs
from slokit.core.assess import Assessment, assess, lookback
from slokit.core.series import Series
from slokit.core.windows import Window, from_minute, to_minute
from slokit.engine.status import ErrorBudget, Status
from slokit.errors import EvaluationError
from slokit.spec.model import SLO, Spec
from slokit.store.definitions import CountDef, for_slo
from slokit.store.duckdb_store import DuckDBStore, Rollup


@dataclass
class _Counts:
    """Sparse rollup rows read so far for one definition, from minute `lo` on; each
    row's group as a code into `groups`."""

    lo: int
    seq: int
    minute: np.ndarray
    group: np.ndarray
    good: np.ndarray
    valid: np.ndarray
    aux: np.ndarray
    groups: list[str]

    def add(self, r: Rollup) -> None:
        """Append newly read rows, mapping their group keys onto this cache's codes."""
        known = {g: i for i, g in enumerate(self.groups)}
        for g in r.groups:
            if g not in known:
                known[g] = len(self.groups)
                self.groups.append(g)
        remap = np.array([known[g] for g in r.groups], dtype=np.int32)
        codes = remap[r.group] if len(r.group) else r.group
        self.minute = np.concatenate([self.minute, r.minute])
        self.group = np.concatenate([self.group, codes])
        self.good = np.concatenate([self.good, r.good])
        self.valid = np.concatenate([self.valid, r.valid])
        self.aux = np.concatenate([self.aux, r.aux])
        self.seq = r.seq


@dataclass(frozen=True)
class _Dense:
    """Dense per-minute arrays of one definition over [lo, hi), one row per group."""

    lo: int
    groups: list[str]
    good: np.ndarray  # (groups, minutes)
    valid: np.ndarray
    aux: np.ndarray


class Evaluator:
    """Evaluates one spec against one store, reusing counts between evaluations."""

    def __init__(self, spec: Spec, store: DuckDBStore, *, register: bool = True) -> None:
        self.spec = spec
        self.store = store
        self.defs: dict[str, CountDef] = {
            s.name: for_slo(s) for s in spec.slos if s.sli.kind != "composite"
        }
        if register and not store.read_only:
            store.register(self.defs.values())
        self._cache: dict[str, _Counts] = {}
        self._markers: list[Marker] = []

    def evaluate(self, at: datetime, slo: str | None = None) -> list[Status]:
        """Statuses of every SLO (or the one named), one per group, at `at` (rounded
        down to the whole minute: buckets are minutes)."""
        if at.tzinfo is None:
            raise EvaluationError("evaluation time must carry a time zone (use UTC)")
        minute = to_minute(at)
        slos = self.spec.slos
        if slo is not None:
            try:
                slos = (self.spec.slo(slo),)
            except KeyError:
                names = ", ".join(s.name for s in self.spec.slos)
                raise EvaluationError(f"no SLO named {slo!r} in the spec; SLOs: {names}") from None
        self._markers = self._load_markers()
        out: list[Status] = []
        for s in slos:
            out.extend(self._evaluate_slo(s, minute))
        return out

    def _load_markers(self) -> list[Marker]:
        notes = self.store.annotations(self.spec.service)
        return [
            Marker(to_minute(n["ts"]), n["kind"], n["text"])
            for n in notes.select(["ts", "kind", "text"]).to_pylist()
        ]

    # -- counts ------------------------------------------------------------------

    def _dense(self, slo: SLO, lo: int, hi: int) -> _Dense:
        d = self.defs[slo.name]
        cached = self._cache.get(d.id)
        if cached is None or cached.lo > lo:
            r = self.store.rollup(d, lo, 2**62)
            cached = _Counts(lo, r.seq, r.minute, r.group, r.good, r.valid, r.aux, r.groups)
        else:
            r = self.store.rollup(d, cached.lo, 2**62, since_seq=cached.seq)
            if len(r.minute):
                cached.add(r)
            else:
                cached.seq = r.seq
        self._cache[d.id] = cached
        inside = (cached.minute >= lo) & (cached.minute < hi)
        groups = cached.groups
        codes = cached.group[inside].astype(np.int64)
        n = hi - lo
        idx = codes * n + (cached.minute[inside] - lo)
        shape = (len(groups), n)

        def dense(values: np.ndarray) -> np.ndarray:
            flat = np.bincount(idx, weights=values[inside], minlength=shape[0] * n)
            # with no minute inside (every event after `hi`), numpy counts in integers
            return flat.astype(np.float64, copy=False).reshape(shape)

        good, valid, aux = dense(cached.good), dense(cached.valid), dense(cached.aux)
        if slo.exclusions:
            excluded = exclusions.mask(list(slo.exclusions), lo, hi)
            good[:, excluded] = 0.0
            valid[:, excluded] = 0.0
            aux[:, excluded] = 0.0
        order = sorted(range(len(groups)), key=groups.__getitem__)  # stable output order
        return _Dense(lo, [groups[i] for i in order], good[order], valid[order], aux[order])

    # -- per SLO -----------------------------------------------------------------

    def _range(self, slo: SLO, minute: int) -> tuple[Window, int]:
        window = slo.window.at(minute)
        return window, self.first_minute(slo, window)

    def first_minute(self, slo: SLO, window: Window) -> int:
        """The first minute an evaluation of `window` reads (slice aligned)."""
        lo = lookback(window, max(slo.alerting.windows, default=0))
        if slo.budgeting.sliced:
            lo -= lo % slo.budgeting.slice_minutes
        return lo

    def group_series(
        self, slo: SLO, lo: int, hi: int
    ) -> list[tuple[dict[str, str | None], Series]]:
        """Each group's counts over minutes [lo, hi), as the budget counts them
        (minutes, or slices), groups in a stable order."""
        if slo.sli.kind == "composite":
            return [({}, self._composite(slo, lo, hi))]
        dense = self._dense(slo, lo, hi)
        d = self.defs[slo.name]
        return [
            (
                d.decode_group(key),
                self._series(slo, lo, dense.good[i], dense.valid[i], dense.aux[i]),
            )
            for i, key in enumerate(dense.groups)
        ]

    def _series(
        self, slo: SLO, lo: int, good: np.ndarray, valid: np.ndarray, aux: np.ndarray
    ) -> Series:
        """The series the budget is counted in: minutes, or slices."""
        minutes = Series(lo, 1, good, valid)
        b = slo.budgeting
        if slo.sli.kind == "throughput":
            return timeslices.fold_throughput(
                minutes, aux, b.slice_minutes, slo.sli.min_per_second or 0.0
            )
        if slo.sli.kind == "latency_percentile":
            return timeslices.fold(minutes, b.slice_minutes, slo.sli.percentile or 1.0)
        if b.sliced:
            return timeslices.fold(
                minutes, b.slice_minutes, b.slice_target, ratio=b.method == "ratio_timeslices"
            )
        return minutes

    def _evaluate_slo(self, slo: SLO, minute: int) -> list[Status]:
        window, lo = self._range(slo, minute)
        groups = self.group_series(slo, lo, minute)
        out = []
        for group, series in groups:
            status = self._status(slo, group, window, series)
            if status.valid > 0 or len(groups) == 1:
                out.append(status)
        if not out:  # no events at all: one status that says so
            zeros = np.zeros(minute - lo)
            empty: dict[str, str | None] = {k: None for k in slo.group_by}
            out.append(self._status(slo, empty, window, self._series(slo, lo, zeros, zeros, zeros)))
        return out

    def _composite(self, slo: SLO, lo: int, minute: int) -> Series:
        """Occurrences: weighted sums of members' good and valid. Time slices: a slice is
        bad when any member's slice is bad."""
        n = minute - lo
        members = []
        for name, weight in slo.sli.members:
            member = self.spec.slo(name)
            dense = self._dense(member, lo, minute)
            good, valid, aux = (
                dense.good.sum(axis=0),
                dense.valid.sum(axis=0),
                dense.aux.sum(axis=0),
            )
            if dense.good.shape[0] == 0:
                good = valid = aux = np.zeros(n)
            if slo.exclusions:
                excluded = exclusions.mask(list(slo.exclusions), lo, minute)
                good, valid, aux = (np.where(excluded, 0.0, a) for a in (good, valid, aux))
            members.append((member, weight, good, valid, aux))
        if not slo.budgeting.sliced:
            good = sum((w * g for _, w, g, _, _ in members), np.zeros(n))
            valid = sum((w * v for _, w, _, v, _ in members), np.zeros(n))
            return Series(lo, 1, good, valid)
        b = slo.budgeting
        folded = []
        for member, _, g, v, a in members:
            m = Series(lo, 1, g, v)
            if member.sli.kind == "throughput":
                folded.append(
                    timeslices.fold_throughput(
                        m, a, b.slice_minutes, member.sli.min_per_second or 0.0
                    )
                )
            elif member.sli.kind == "latency_percentile":
                folded.append(timeslices.fold(m, b.slice_minutes, member.sli.percentile or 1.0))
            else:
                folded.append(timeslices.fold(m, b.slice_minutes, b.slice_target))
        return timeslices.any_bad(folded)

    def _status(
        self, slo: SLO, group: dict[str, str | None], window: Window, series: Series
    ) -> Status:
        sampled = slo.sli.sampled
        min_events = slo.sli.min_samples if sampled and slo.sli.min_samples else slo.min_events
        a: Assessment = assess(
            series,
            window,
            slo.objective,
            min_events=min_events,
            sampled=sampled,
        )
        end = from_minute(window.end)
        unit = "slices" if series.step > 1 or slo.budgeting.sliced else "events"
        if slo.sli.kind == "cost" and slo.sli.mean_usd is not None:
            unit = "usd"
        b = a.budget
        return Status(
            service=slo.service,
            slo=slo.name,
            sli_kind=slo.sli.kind,
            group=group,
            window_start=from_minute(window.start),
            window_end=end,
            window=slo.window.describe(),
            budgeting=slo.budgeting.method,
            good=a.good,
            valid=a.valid,
            sli=None if a.sli is None else a.sli * 100,
            objective=slo.objective_percent,
            error_budget=ErrorBudget(b.total, b.consumed, b.remaining, b.remaining_events, unit),
            burn_rates=a.burn_rates,
            exhaustion={
                k: None if v is None else from_minute(window.end + int(v))
                for k, v in a.exhaustion_minutes.items()
            },
            interval=None if a.interval is None else (a.interval[0] * 100, a.interval[1] * 100),
            no_data=a.no_data,
            too_few_events=a.too_few_events,
            timeline=[
                (from_minute(int(t)), float(r))
                for t, r in zip(a.timeline_minutes, a.timeline_remaining, strict=True)
            ],
            series=series,
            annotations=interval_costs(
                self._markers, series, window, b.total, self.spec.policy.postmortem_over
            ),
        )


def evaluate(spec: Spec, store: DuckDBStore, at: datetime, slo: str | None = None) -> list[Status]:
    """Statuses of every SLO and group of `spec` at `at`."""
    return Evaluator(spec, store).evaluate(at, slo)
