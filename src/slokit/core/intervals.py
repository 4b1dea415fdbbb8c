"""Confidence intervals for sampled SLIs (quality scores)."""

from __future__ import annotations

import math


def wilson(good: float, valid: float, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (Wilson 1927); 95% by default.

    Better than the normal approximation at small samples and near 0 or 1."""
    if valid <= 0:
        return None
    p = good / valid
    denom = 1 + z * z / valid
    centre = (p + z * z / (2 * valid)) / denom
    half = z * math.sqrt(p * (1 - p) / valid + z * z / (4 * valid * valid)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
