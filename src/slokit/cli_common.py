"""Pieces every `slokit` command module shares: consoles, common options, errors,
times, JSON output."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from slokit.errors import SlokitError

out = Console(highlight=False)
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False)

DbOpt = Annotated[Path, typer.Option("--db", envvar="SLOKIT_DB", help="DuckDB event store file.")]
SpecOpt = Annotated[
    Path, typer.Option("--spec", envvar="SLOKIT_SPEC", help="SLO spec file (YAML).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
PROGRESS_MIN_BYTES = 4 << 20


def _fail(exc: SlokitError, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
    return typer.Exit(code)


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time; use RFC 3339 like 2026-11-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dump(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
