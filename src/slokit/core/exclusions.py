"""Maintenance exclusions: explicit ranges and RFC 5545 recurrence rules, expanded
into a mask of excluded minutes. Excluded time leaves the denominator; it is not
counted good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from dateutil.rrule import rrulestr
from numpy.typing import NDArray

from slokit.core.windows import from_minute, to_minute


@dataclass(frozen=True)
class Exclusion:
    start: datetime  # aware; first occurrence for a recurrence
    duration_minutes: int
    rrule: str | None = None  # e.g. "FREQ=WEEKLY;BYDAY=SU"; None for a single range
    reason: str = ""

    def ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Excluded [start, end) minute ranges that touch [lo, hi)."""
        if self.rrule is None:
            starts = [self.start]
        else:
            rule = rrulestr(self.rrule, dtstart=self.start)
            first = from_minute(lo - self.duration_minutes).astimezone(self.start.tzinfo)
            last = from_minute(hi).astimezone(self.start.tzinfo)
            starts = list(rule.between(first, last, inc=True))
        out = []
        for s in starts:
            a = to_minute(s)
            b = to_minute(s + timedelta(minutes=self.duration_minutes))
            if b > lo and a < hi:
                out.append((max(a, lo), min(b, hi)))
        return out


def mask(exclusions: list[Exclusion], lo: int, hi: int) -> NDArray[np.bool_]:
    """True for each minute of [lo, hi) that is excluded."""
    out = np.zeros(max(hi - lo, 0), dtype=bool)
    for ex in exclusions:
        for a, b in ex.ranges(lo, hi):
            out[a - lo : b - lo] = True
    return out
