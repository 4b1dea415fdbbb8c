"""Timeslices budgeting: each slice of time is good or bad (OpenSLO Timeslices), or
counts its own ratio (RatioTimeslices). Slices are aligned to multiples of the slice
length since the epoch; a slice with no valid events does not count."""

from __future__ import annotations

import numpy as np

from slokit.core.series import Floats, Series


def _slice_sums(values: Floats, per: int) -> Floats:
    n = len(values) // per
    sums: Floats = values[: n * per].reshape(n, per).sum(axis=1)
    return sums


def _check(series: Series, slice_minutes: int) -> None:
    if series.step != 1 or series.start % slice_minutes:
        raise ValueError("fold expects minute buckets that start on a slice boundary")


def fold(series: Series, slice_minutes: int, slice_target: float, *, ratio: bool = False) -> Series:
    """Minute counts -> one count per slice: good 1/0 against `slice_target` (a
    fraction), or the slice's own ratio when `ratio` is set; valid 1 if it had data."""
    _check(series, slice_minutes)
    good = _slice_sums(series.good, slice_minutes)
    valid = _slice_sums(series.valid, slice_minutes)
    has = valid > 0
    ratios = np.divide(good, valid, out=np.zeros(len(good)), where=has)
    # Tolerate float noise: a slice exactly at its target is good.
    verdict = ratios if ratio else (ratios >= slice_target - 1e-12).astype(float)
    return Series(series.start, slice_minutes, np.where(has, verdict, 0.0), has.astype(float))


def fold_throughput(
    served: Series, failed: Floats, slice_minutes: int, target_per_second: float
) -> Series:
    """A slice is good when its served rate meets the target, or when everything
    offered in it was served (the offered load was below the target).

    `served.good` holds served units (requests or tokens), `served.valid` the offered
    requests, `failed` the offered requests that were not served."""
    _check(served, slice_minutes)
    units = _slice_sums(served.good, slice_minutes)
    offered = _slice_sums(served.valid, slice_minutes)
    lost = _slice_sums(failed, slice_minutes)
    rate = units / (slice_minutes * 60.0)
    good = (rate >= target_per_second) | (lost <= 0)
    return Series(served.start, slice_minutes, good.astype(float), np.ones_like(offered))


def any_bad(members: list[Series]) -> Series:
    """Composite slices: bad when any member's slice is bad; counted when any member
    had data in it."""
    first = members[0]
    valid = np.zeros_like(first.valid)
    bad = np.zeros_like(first.valid, dtype=bool)
    for m in members:
        if m.step != first.step or m.start != first.start or len(m.good) != len(first.good):
            raise ValueError("composite members must share slices")
        has = m.valid > 0
        valid = np.maximum(valid, has.astype(float))
        bad |= has & (m.good < m.valid)
    return Series(first.start, first.step, np.where(bad, 0.0, valid), valid)
