"""`slokit cost` (spend per route, model, tier, tenant or deployment) and `slokit
prices` (check and show a price book). The arithmetic lives in `slokit.cost`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from slokit.cli_common import DbOpt, JsonOpt, _dump, _fail, _parse_time, out
from slokit.cost import CostReport, CostRow, PriceBook, Unpriced
from slokit.errors import SlokitError, StoreError

DEFAULT_DAYS = 30
REASONS = {"no_price": "no price", "no_tokens": "no token counts"}

PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        envvar="SLOKIT_PRICES",
        help="Price book (YAML or JSON; default: the bundled example list prices).",
    ),
]


def _book(path: Path | None) -> PriceBook:
    from slokit.cost import default_pricebook, load_pricebook

    return default_pricebook() if path is None else load_pricebook(path)


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1 or value == 0:
        return f"${value:,.2f}"
    return f"${value:.3g}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _cells(row: CostRow) -> list[str]:
    known = row.priced_requests > 0
    return [
        f"{row.requests:,}",
        _usd(row.spend_usd if known else None),
        _usd(row.cost_per_request),
        _usd(row.cost_per_1k_output_tokens),
        _num(row.tokens_per_usd),
        _usd(row.wasted_usd if known else None),
        _pct(row.wasted_share),
        f"{row.unpriced:,}" if row.unpriced else "",
    ]


def _unpriced_line(items: list[Unpriced]) -> str:
    return ", ".join(
        f"{u.model or '(no model)'} ({REASONS.get(u.reason, u.reason)}) {u.requests:,}"
        for u in items
    )


def _print(report: CostReport) -> None:
    scope = f" of {report.service}" if report.service else ""
    out.print(
        f"spend{scope} from {report.start.isoformat()} to {report.end.isoformat()}, "
        f"prices: {report.prices}"
    )
    table = Table()
    for dim in report.by:
        table.add_column(dim)
    for col in (
        "requests",
        "spend",
        "$/request",
        "$/1k out tok",
        "tokens/$",
        "wasted",
        "wasted %",
        "unpriced",
    ):
        table.add_column(col, justify="right")
    for i, row in enumerate(report.rows):
        keys = ["(none)" if v is None else v for v in row.group.values()]
        table.add_row(*keys, *_cells(row), end_section=i == len(report.rows) - 1)
    label = ["total", *[""] * (len(report.by) - 1)] if report.by else []
    table.add_row(*label, *_cells(report.total), style="bold")
    out.print(table)
    total = report.total
    if total.from_book or total.self_hosted:
        out.print(
            f"{total.from_book:,} request(s) without a recorded cost priced at the book's list "
            f"prices; {total.self_hosted:,} attributed self-hosted GPU time by token share"
        )
    if total.unpriced:
        out.print(
            f"[yellow]{total.unpriced:,} request(s) unpriced[/], not in the spend: "
            f"{_unpriced_line(report.unpriced)}; add them to a price book (--prices FILE)"
        )


def cost(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by route, model, tier, tenant, deployment, region or service "
            "(repeat or comma-separate; default: totals only).",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help=f"Start (RFC 3339; default: {DEFAULT_DAYS} days before --to)."),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (RFC 3339; default: now).")] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Only this service's requests.")
    ] = None,
    prices: PricesOpt = None,
    db: DbOpt = Path("slokit.duckdb"),
    as_json: JsonOpt = False,
) -> None:
    """Spend, cost per request, per 1k output tokens, tokens per dollar and wasted spend."""
    from slokit.cost import cost_report, parse_dimensions
    from slokit.store import DuckDBStore

    stop = _parse_time(end)
    begin = _parse_time(start) if start else stop - timedelta(days=DEFAULT_DAYS)
    if begin >= stop:
        raise typer.BadParameter("--from must be before --to")
    try:
        dims = parse_dimensions(by or [])
        book = _book(prices)
        if not db.exists():
            raise StoreError(f"{db}: no event store here; pass --db")
        with DuckDBStore(db, read_only=True) as store:
            report = cost_report(store, book, begin, stop, by=dims, service=service)
    except SlokitError as exc:
        raise _fail(exc) from None
    if as_json:
        _dump(report.to_dict())
    else:
        _print(report)


def prices(
    file: Annotated[
        Path | None, typer.Argument(help="Price book to check (default: the bundled one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a price book and show its prices per 1M tokens and its self-hosted pools."""
    try:
        book = _book(file)
    except SlokitError as exc:
        raise _fail(exc) from None
    models = [
        {
            "model": name,
            "priced_as": p.model,
            "input_per_1m_usd": p.input * 1e6,
            "output_per_1m_usd": p.output * 1e6,
            "cache_read_per_1m_usd": None if p.cache_read is None else p.cache_read * 1e6,
        }
        for name, p in sorted(book.prices.items())
    ]
    pools = [
        {
            "deployment": p.name,
            "instance": p.instance,
            "replicas": p.replicas,
            "gpus": p.gpus_total,
            "hourly_usd": p.hourly_usd,
            "models": list(p.models),
        }
        for p in book.pools
    ]
    if as_json:
        _dump(
            {
                "source": book.source,
                "attribution_period_minutes": book.period_minutes,
                "models": models,
                "self_hosted": pools,
            }
        )
        return
    out.print(f"[green]ok[/]: {book.source}: {len(models)} model name(s), {len(pools)} pool(s)")
    table = Table("model", "priced as", "$/1M in", "$/1M out", "$/1M cached in")
    for m in models:
        cached = m["cache_read_per_1m_usd"]
        table.add_row(
            str(m["model"]),
            str(m["priced_as"]),
            f"{m['input_per_1m_usd']:.4g}",
            f"{m['output_per_1m_usd']:.4g}",
            "= input" if cached is None else f"{cached:.4g}",
        )
    out.print(table)
    if pools:
        hosted = Table("deployment", "instance", "replicas", "GPUs", "$/hour", "models")
        for pool in book.pools:
            hosted.add_row(
                pool.name,
                pool.instance,
                str(pool.replicas),
                str(pool.gpus_total),
                f"{pool.hourly_usd:,.2f}",
                ", ".join(pool.models) or "-",
            )
        out.print(hosted)
        out.print(f"GPU time is attributed per {book.period_minutes}-minute period by token share")


def register(app: typer.Typer) -> None:
    app.command()(cost)
    app.command()(prices)
