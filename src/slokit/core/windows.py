"""SLO windows in whole UTC minutes: rolling (the last N minutes) and calendar
(the current week, month or quarter in a time zone, DST included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

CALENDAR_UNITS = ("week", "month", "quarter")


@dataclass(frozen=True)
class Window:
    start: int  # epoch minute, inclusive
    end: int  # epoch minute, exclusive: the evaluation time
    length: int  # minutes the budget is spread over (a calendar period's full length)
    rolling: bool = True

    @property
    def elapsed(self) -> int:
        return self.end - self.start


def to_minute(moment: datetime) -> int:
    """Epoch minute of an aware datetime, rounded down to the whole minute."""
    return int(moment.timestamp() // 60)


def from_minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def rolling(at: int, minutes: int) -> Window:
    return Window(start=at - minutes, end=at, length=minutes)


def period_bounds(at: int, unit: str, tz: tzinfo) -> tuple[int, int]:
    """[start, end) of the calendar period (in `tz`) that contains minute `at`."""
    local = from_minute(at).astimezone(tz)
    if unit == "week":  # ISO weeks start on Monday
        day = local.date() - timedelta(days=local.weekday())
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        nxt_day = day + timedelta(days=7)
        end = datetime(nxt_day.year, nxt_day.month, nxt_day.day, tzinfo=tz)
    elif unit in ("month", "quarter"):
        months = 1 if unit == "month" else 3
        first = local.month - (local.month - 1) % months
        start = datetime(local.year, first, 1, tzinfo=tz)
        year, month = divmod(first - 1 + months, 12)
        end = datetime(local.year + year, month + 1, 1, tzinfo=tz)
    else:
        raise ValueError(f"unknown calendar unit {unit!r}; use one of {', '.join(CALENDAR_UNITS)}")
    return to_minute(start), to_minute(end)


def calendar(at: int, unit: str, tz: tzinfo) -> Window:
    """The current calendar period up to `at`; `length` is the whole period, so a burn
    rate of 1 spends exactly the period's budget."""
    start, end = period_bounds(at, unit, tz)
    return Window(start=start, end=at, length=end - start, rolling=False)
