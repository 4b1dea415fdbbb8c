"""Terminal views of statuses and ingest reports. Views format; they never compute
SLO math (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from slokit.engine.status import Status
from slokit.ingest import IngestReport

BAR_WIDTH = 12


def budget_bar(remaining: float) -> Text:
    fraction = min(max(remaining, 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    colour = "green" if remaining >= 0.5 else "yellow" if remaining >= 0.25 else "red"
    text = Text("█" * filled, style=colour)
    text.append("░" * (BAR_WIDTH - filled), style="dim")
    text.append(f" {remaining * 100:6.1f}%", style=colour if remaining > 0 else "bold red")
    return text


def _group(status: Status) -> str:
    if not status.group:
        return "-"
    return ",".join(f"{k}={'(none)' if v is None else v}" for k, v in status.group.items())


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    hours = (moment - now).total_seconds() / 3600
    return f"in {hours:.1f}h" if hours < 48 else f"in {hours / 24:.1f}d"


def status_table(statuses: list[Status], at: datetime) -> Table:
    services = sorted({s.service for s in statuses})
    table = Table(
        title=f"{', '.join(services)}: SLO status at {at.isoformat().replace('+00:00', 'Z')}",
        expand=False,
    )
    for col in (
        "SLO",
        "group",
        "window",
        "SLI / objective",
        "budget remaining",
        "worst burn",
        "exhausted",
    ):
        table.add_column(col, no_wrap=col in ("SLO", "budget remaining"))
    for s in statuses:
        if s.sli is None:
            sli = Text("no data", style="dim")
        else:
            style = "green" if s.meets_objective else "red"
            sli = Text(f"{s.sli:.3f}% / {s.objective:g}%", style=style)
            if s.interval is not None:
                sli.append(f"\n[{s.interval[0]:.1f}, {s.interval[1]:.1f}]", style="dim")
            if s.too_few_events:
                sli.append(" (few events)", style="yellow")
        worst = s.worst_burn
        burn = "-" if worst is None else f"{worst[1]:.2f}x ({worst[0]})"
        exhausted = _when(s.exhaustion.get("1h"), s.window_end)
        table.add_row(
            s.slo, _group(s), s.window, sli, budget_bar(s.error_budget.remaining), burn, exhausted
        )
    return table


def print_statuses(console: Console, statuses: list[Status], at: datetime) -> None:
    console.print(status_table(statuses, at))


def print_ingest(console: Console, report: IngestReport, shown: int = 20) -> None:
    style = "green" if report.rejected == 0 else "yellow"
    console.print(
        f"[bold]{report.path}[/]: [{style}]{report.accepted} accepted[/], "
        f"{report.duplicates} already stored, "
        f"[{'red' if report.rejected else 'green'}]{report.rejected} rejected[/]"
    )
    if report.costs_filled or report.unpriced:
        left = ", ".join(f"{m} ({n})" for m, n in sorted(report.unpriced.items()))
        console.print(
            f"  costs filled from the price book: {report.costs_filled}"
            + (f"; no price for: {left}" if left else ""),
            markup=False,
            highlight=False,
        )
    for r in report.rejections[:shown]:
        console.print(f"  {report.path}: {r}", markup=False, highlight=False)
    if report.rejected > shown:
        console.print(f"  ... and {report.rejected - shown} more (use --json for all)")
