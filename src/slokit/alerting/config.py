"""Receiver configs of a spec, checked with the notifiers' own pydantic types, so a
bad receiver is reported at spec load with its file, line and field."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError


def receiver_problems(raw: dict[str, Any]) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """(receiver name, message, path inside the receiver) for every problem."""
    if not raw:
        return []
    from slokit.alerting.receivers import Receiver, describe_error

    adapter: TypeAdapter[Any] = TypeAdapter(Receiver)
    out: list[tuple[str, str, tuple[str | int, ...]]] = []
    for name, config in raw.items():
        try:
            adapter.validate_python(config)
        except ValidationError as exc:
            for err in exc.errors():
                path, message = describe_error(err)
                out.append((name, message, path))
    return out
