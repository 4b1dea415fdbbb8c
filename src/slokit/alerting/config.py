"""Receiver configs of a spec, checked with the notifiers' own pydantic types, so a
bad receiver is reported at spec load with its file, line and field."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError


def receiver_problems(raw: dict[str, Any]) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """(receiver name, message, path inside the receiver) for every problem."""
    if not raw:
        return []
    from slokit.alerting.notify import Receiver

    adapter: TypeAdapter[Any] = TypeAdapter(Receiver)
    out: list[tuple[str, str, tuple[str | int, ...]]] = []
    for name, config in raw.items():
        try:
            adapter.validate_python(config)
        except ValidationError as exc:
            for err in exc.errors():
                # drop the union's tag from the location: ("webhook", "url") -> ("url",)
                loc = tuple(err["loc"])
                if loc and isinstance(config, dict) and loc[0] == config.get("type"):
                    loc = loc[1:]
                out.append((name, err["msg"], loc))
    return out
