"""Delay and length distributions: constant, lognormal, uniform.

One small value type the hot path samples from with the server's seeded `random.Random`.
A lognormal is given by its median and either its p99 or its sigma (the standard
deviation of ln X): median = e^mu, and p99 = median * e^(2.3263 sigma), 2.3263 being the
standard normal's 99th percentile. Every sample is clamped to [min, max].

Shorthand text, used by the CLI and accepted in config files:

    150                    constant 150
    constant:150           the same
    lognormal:150:600      median 150, p99 600
    uniform:100:200        uniform between 100 and 200
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Z99 = 2.3263478740408408  # standard normal 99th percentile
Kind = Literal["constant", "lognormal", "uniform"]


@dataclass(frozen=True, slots=True)
class Distribution:
    """`a`, `b`: constant (value, unused), lognormal (median, sigma), uniform (low, high)."""

    kind: Kind
    a: float
    b: float = 0.0
    min: float = 0.0
    max: float | None = None

    @classmethod
    def constant(cls, value: float) -> Distribution:
        if value < 0:
            raise ValueError(f"must be >= 0, got {value:g}")
        return cls("constant", float(value))

    @classmethod
    def lognormal(
        cls,
        median: float,
        p99: float | None = None,
        sigma: float | None = None,
        min: float = 0.0,
        max: float | None = None,
    ) -> Distribution:
        if median <= 0:
            raise ValueError(f"a lognormal median must be > 0, got {median:g}")
        if (p99 is None) == (sigma is None):
            raise ValueError("a lognormal takes its median and exactly one of p99 or sigma")
        if p99 is not None:
            if p99 < median:
                raise ValueError(f"p99 ({p99:g}) must be >= the median ({median:g})")
            sigma = math.log(p99 / median) / Z99
        assert sigma is not None
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma:g}")
        return cls("lognormal", float(median), float(sigma), min, max)._checked()

    @classmethod
    def uniform(
        cls, low: float, high: float, min: float = 0.0, max: float | None = None
    ) -> Distribution:
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got low {low:g}, high {high:g}")
        return cls("uniform", float(low), float(high), min, max)._checked()

    @classmethod
    def parse(cls, text: str) -> Distribution:
        """A shorthand (`150`, `lognormal:150:600`, `uniform:100:200`); see the module doc."""
        parts = text.strip().split(":")
        try:
            numbers = [float(p) for p in parts[1:]] if len(parts) > 1 else [float(parts[0])]
        except ValueError:
            raise ValueError(f"{text!r} is not a distribution; {SHORTHANDS}") from None
        kind = parts[0] if len(parts) > 1 else "constant"
        if kind == "constant" and len(numbers) == 1:
            return cls.constant(numbers[0])
        if kind == "lognormal" and len(numbers) == 2:
            return cls.lognormal(numbers[0], p99=numbers[1])
        if kind == "uniform" and len(numbers) == 2:
            return cls.uniform(numbers[0], numbers[1])
        raise ValueError(f"{text!r} is not a distribution; {SHORTHANDS}")

    def _checked(self) -> Distribution:
        if self.min < 0:
            raise ValueError(f"min must be >= 0, got {self.min:g}")
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max:g}) must be >= min ({self.min:g})")
        return self

    @property
    def is_zero(self) -> bool:
        """Always 0: the server can answer without waiting."""
        return (self.kind == "constant" and self.a == 0) or self.max == 0

    @property
    def median(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def sample(self, rng: random.Random) -> float:
        if self.kind == "constant":
            x = self.a
        elif self.kind == "lognormal":
            x = self.a * math.exp(self.b * rng.gauss(0.0, 1.0))
        else:
            x = rng.uniform(self.a, self.b)
        if x < self.min:
            return self.min
        if self.max is not None and x > self.max:
            return self.max
        return x

    def describe(self) -> str:
        if self.kind == "constant":
            text = f"{self.a:g}"
        elif self.kind == "lognormal":
            text = f"lognormal median {self.a:g} p99 {self.a * math.exp(Z99 * self.b):.4g}"
        else:
            text = f"uniform {self.a:g}..{self.b:g}"
        if self.min or self.max is not None:
            text += f" clamped to [{self.min:g}, {'inf' if self.max is None else f'{self.max:g}'}]"
        return text


SHORTHANDS = "use a number, `lognormal:MEDIAN:P99` or `uniform:LOW:HIGH`"
