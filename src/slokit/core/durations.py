"""Durations written as `30s`, `5m`, `1h`, `7d`, `2w`, in whole minutes."""

from __future__ import annotations

import re

_UNITS = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_PATTERN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_minutes(text: str) -> int:
    """`5m` -> 5, `1h` -> 60, `30d` -> 43200. Raises ValueError with the valid forms."""
    match = _PATTERN.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"invalid duration {text!r}; use a positive whole number of minutes, hours, "
            "days or weeks, like 5m, 1h, 7d, 2w"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_minutes(minutes: int) -> str:
    """The shortest exact spelling in days, hours or minutes: 43200 -> `30d`, 90 -> `90m`."""
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes >= size and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


_SECONDS = re.compile(r"^\s*(\d+)\s*([smh])\s*$")


def parse_seconds(text: str) -> int:
    """`30s` -> 30, `2m` -> 120, `1h` -> 3600: for intervals shorter than a minute."""
    match = _SECONDS.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"invalid interval {text!r}; use a positive whole number of seconds, minutes or "
            "hours, like 30s, 1m, 1h"
        )
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
