"""Good/valid counts in equal time buckets, summed over any window by prefix sums.

Time is in whole minutes since the Unix epoch (UTC). Bucket `i` covers
`[start + i*step, start + (i+1)*step)`. A window `[lo, hi)` sums the buckets that lie
wholly inside it (DESIGN.md: "a window is a difference of prefix sums").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    start: int
    step: int
    good: Floats
    valid: Floats
    _cum_good: Floats = field(init=False, repr=False, compare=False)
    _cum_valid: Floats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.good.shape != self.valid.shape:
            raise ValueError("good and valid must have the same length")
        zero = np.zeros(1)
        object.__setattr__(self, "_cum_good", np.concatenate([zero, np.cumsum(self.good)]))
        object.__setattr__(self, "_cum_valid", np.concatenate([zero, np.cumsum(self.valid)]))

    @property
    def end(self) -> int:
        return self.start + self.step * len(self.good)

    def _index(self, minute: int, *, up: bool) -> int:
        offset = minute - self.start
        idx = -(-offset // self.step) if up else offset // self.step
        return int(min(max(idx, 0), len(self.good)))

    def window(self, lo: int, hi: int) -> tuple[float, float]:
        """(good, valid) summed over buckets wholly inside [lo, hi)."""
        a, b = self._index(lo, up=True), self._index(hi, up=False)
        if b <= a:
            return 0.0, 0.0
        return (
            float(self._cum_good[b] - self._cum_good[a]),
            float(self._cum_valid[b] - self._cum_valid[a]),
        )

    def windows(self, lo: NDArray[np.int64], hi: NDArray[np.int64]) -> tuple[Floats, Floats]:
        """Vectorised `window` for many [lo, hi) pairs at once."""
        a = np.clip(-((self.start - lo) // self.step), 0, len(self.good))
        b = np.clip((hi - self.start) // self.step, 0, len(self.good))
        b = np.maximum(a, b)
        return self._cum_good[b] - self._cum_good[a], self._cum_valid[b] - self._cum_valid[a]


def empty(start: int, step: int, n: int) -> Series:
    return Series(start, step, np.zeros(n), np.zeros(n))
