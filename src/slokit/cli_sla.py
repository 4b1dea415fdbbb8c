"""`slokit sla status` and `slokit report sla`: each customer's month as their contract
measures it, the credit owed, and a report with the evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from slokit.cli_common import DbOpt, JsonOpt, _dump, _fail, err, out
from slokit.errors import SlokitError, StoreError

sla_app = typer.Typer(help="SLA contracts: uptime as each contract measures it, credits owed.")
report_app = typer.Typer(help="Reports for customers and finance.")

ContractsOpt = Annotated[
    Path,
    typer.Option("--contracts", envvar="SLOKIT_CONTRACTS", help="Contracts file (YAML)."),
]
CustomerOpt = Annotated[
    str | None, typer.Option("--customer", help="Only this customer's contracts.")
]
SpecForBuffer = Annotated[
    Path | None,
    typer.Option("--spec", help="SLO spec, to warn when an internal SLO is not stricter."),
]


def _results(
    contracts: Path,
    db: Path,
    month: str | None,
    customer: str | None,
    spec: Path | None,
    now: datetime | None = None,
) -> list[Any]:
    from slokit.sla.compute import compute
    from slokit.sla.contract import load_contracts
    from slokit.store import DuckDBStore

    chosen = load_contracts(contracts)
    if customer is not None:
        chosen = [c for c in chosen if c.customer == customer]
        if not chosen:
            raise SlokitError(f"{contracts}: no contract for customer {customer!r}")
    internal = None
    if spec is not None:
        from slokit.spec import load

        internal = {s.name: s.objective_percent for s in load(spec).slos}
    current = datetime.now(UTC)
    month = month or f"{current:%Y-%m}"
    if not db.exists():
        raise StoreError(f"{db}: no event store here; pass --db")
    with DuckDBStore(db) as store:
        return compute(store, chosen, month, now=now or current, internal=internal)


@sla_app.command("status")
def status(
    contracts: ContractsOpt = Path("contracts.yaml"),
    db: DbOpt = Path("slokit.duckdb"),
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM (default: this month, so far).")
    ] = None,
    customer: CustomerOpt = None,
    spec: SpecForBuffer = None,
    as_json: JsonOpt = False,
) -> None:
    """Uptime per contract, the tier reached, credit owed; this month with a projection."""
    try:
        results = _results(contracts, db, month, customer, spec)
    except SlokitError as exc:
        raise _fail(exc) from None
    data = [r.to_dict() for r in results]
    if as_json:
        _dump({"contracts": data})
        return
    table = Table(title=f"SLA {data[0]['month'] if data else ''}", title_justify="left")
    for col in ("contract", "customer", "method", "uptime / commitment", "tier", "credit"):
        table.add_column(col)
    for d in data:
        mark = "[green]met[/]" if d["met"] else "[red]missed[/]"
        tier = "-" if d["tier"] is None else f"< {d['tier']['below']}% → {d['tier']['credit']}%"
        table.add_row(
            d["contract"],
            d["customer"],
            d["method"],
            f"{d['uptime']:.4f}% / {d['commitment']}% {mark}",
            tier,
            f"{d['credit']:,.2f} {d['currency']}",
        )
    out.print(table)
    for d in data:
        if d["projection"]:
            out.print(f"{d['contract']}: {d['projection']['summary']}")
        for w in d["warnings"]:
            out.print(f"[yellow]warning:[/] {d['contract']}: {w}")


@report_app.command("sla")
def report_sla(
    month: Annotated[str, typer.Option("--month", help="The billing month, YYYY-MM.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the report.")],
    fmt: Annotated[str, typer.Option("--format", help="html, pdf, json or csv.")] = "html",
    contracts: ContractsOpt = Path("contracts.yaml"),
    db: DbOpt = Path("slokit.duckdb"),
    customer: CustomerOpt = None,
    spec: SpecForBuffer = None,
) -> None:
    """A monthly SLA report: summary, daily uptime chart, downtime evidence, exclusions,
    the credit arithmetic. With --customer, that customer's data only."""
    from slokit.sla.render import write_report

    if fmt not in ("html", "pdf", "json", "csv"):
        raise typer.BadParameter("--format must be html, pdf, json or csv")
    try:
        results = _results(contracts, db, month, customer, spec)
        who = f" for {customer}" if customer else ""
        write_report(
            [r.to_dict() for r in results], fmt, out_path, title=f"SLA report {month}{who}"
        )
    except SlokitError as exc:
        raise _fail(exc) from None
    err.print(f"wrote {out_path} ({len(results)} contract(s))")


def register(app: typer.Typer) -> None:
    app.add_typer(sla_app, name="sla")
    app.add_typer(report_app, name="report")
