"""Cheap quality checks on every answer, each recorded as a ScoreEvent (`source:
check`) so a `quality` SLO can hold them: `json_valid` (only when the request asked for
JSON via `response_format`), `non_empty`, `not_truncated` (finish reason is not
`length`) and `no_refusal` (none of the configured refusal phrases, case-insensitive).
"""

from __future__ import annotations

from typing import Any

import orjson

CHECKS = ("json_valid", "non_empty", "not_truncated", "no_refusal")


def wants_json(request: dict[str, Any]) -> bool:
    rf = request.get("response_format")
    return isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")


def run_checks(
    text: str | None,
    finish_reason: str | None,
    want_json: bool,
    refusals: tuple[str, ...],
) -> list[tuple[str, bool]]:
    """(check name, passed) for each check that applies to this answer."""
    out: list[tuple[str, bool]] = []
    if text is None and finish_reason is None:
        return out  # nothing readable came back (an error, an embedding)
    body = text or ""
    if want_json:
        try:
            orjson.loads(body)
            out.append(("json_valid", True))
        except orjson.JSONDecodeError:
            out.append(("json_valid", False))
    out.append(("non_empty", bool(body.strip()) or finish_reason == "tool_calls"))
    out.append(("not_truncated", finish_reason != "length"))
    if refusals:
        low = body[:2000].lower()
        out.append(("no_refusal", not any(p in low for p in refusals)))
    return out
