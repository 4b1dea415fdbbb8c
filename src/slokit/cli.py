"""The `slokit` command line: parse, build library objects, print. No SLO math here."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TimeRemainingColumn

from slokit import cli_alerting, cli_cost, cli_fakellm, cli_gateway, cli_sla
from slokit.cli_common import (
    PROGRESS_MIN_BYTES,
    DbOpt,
    JsonOpt,
    SpecOpt,
    _dump,
    _fail,
    _parse_time,
    err,
    out,
)
from slokit.errors import SlokitError

app = typer.Typer(
    name="slokit",
    help="SLOs, error budgets and SLAs for AI inference services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
openslo_app = typer.Typer(help="Convert between slokit specs and OpenSLO v1.", no_args_is_help=True)
app.add_typer(openslo_app, name="openslo")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the spec.")] = Path("slokit.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a complete example spec, with every SLI kind, to start from."""
    if path.exists() and not force:
        err.print(f"[red]error:[/] {path} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    path.write_text(resources.files("slokit.spec").joinpath("example.yaml").read_text())
    out.print(f"wrote {path}; check it with: slokit validate {path}")


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="Spec file to check.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a spec file; print every problem with its file, line and field."""
    from slokit.errors import SpecError
    from slokit.spec import load

    try:
        model = load(spec)
    except SpecError as exc:
        if as_json:
            _dump({"valid": False, "problems": exc.problems})
            raise typer.Exit(1) from None
        raise _fail(exc, 1) from None
    if as_json:
        _dump({"valid": True, "service": model.service, "slos": [s.name for s in model.slos]})
    else:
        out.print(f"[green]ok[/]: {spec}: service {model.service}, {len(model.slos)} SLOs")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="JSONL, CSV or Parquet files.")],
    db: DbOpt = Path("slokit.duckdb"),
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv or parquet (default: by extension).")
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="request, score or annotation records.")
    ] = "request",
    service: Annotated[
        str | None, typer.Option("--service", help="Service for records that name none.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec", envvar="SLOKIT_SPEC", help="Keep this spec's rollups current while ingesting."
        ),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            envvar="SLOKIT_PRICES",
            help="Fill missing cost_usd of request events from this price book (docs/cost.md).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load event files into the store. Re-ingesting a file does not double-count."""
    from slokit.ingest import ingest_file
    from slokit.render import print_ingest
    from slokit.store import DuckDBStore, for_slo

    if kind not in ("request", "score", "annotation"):
        raise typer.BadParameter("use request, score or annotation", param_hint="--kind")
    reports = []
    try:
        book = None
        if prices is not None:
            from slokit.cost import load_pricebook

            book = load_pricebook(prices)
        with DuckDBStore(db) as store:
            if spec is not None:
                from slokit.spec import load

                model = load(spec)
                store.register(for_slo(s) for s in model.slos if s.sli.kind != "composite")
            for path in paths:
                size = path.stat().st_size if path.is_file() else 0
                show = size >= PROGRESS_MIN_BYTES and err.is_terminal and not as_json
                with Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    disable=not show,
                    transient=True,
                ) as bar:
                    task = bar.add_task(str(path), total=size)

                    def advance(done: int, total: int, task: TaskID = task) -> None:
                        bar.update(task, completed=done)

                    report = ingest_file(
                        store,
                        path,
                        kind=kind,
                        fmt=fmt,
                        defaults={"service": service} if service else None,
                        progress=advance,
                        prices=book,
                    )
                reports.append(report)
                if not as_json:
                    print_ingest(out, report)
    except SlokitError as exc:
        raise _fail(exc) from None
    if as_json:
        _dump(
            {
                "files": [r.to_dict() for r in reports],
                "accepted": sum(r.accepted for r in reports),
                "rejected": sum(r.rejected for r in reports),
            }
        )
    if any(r.rejected for r in reports):
        raise typer.Exit(1)


@app.command()
def status(
    spec: SpecOpt = Path("slokit.yaml"),
    db: DbOpt = Path("slokit.duckdb"),
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate at this time (RFC 3339).")
    ] = None,
    slo: Annotated[str | None, typer.Option("--slo", help="Only this SLO.")] = None,
    as_json: JsonOpt = False,
    timeline: Annotated[
        bool, typer.Option("--timeline/--no-timeline", help="Include the budget timeline in JSON.")
    ] = True,
) -> None:
    """Evaluate the spec: SLI, error budget, burn rates and exhaustion per SLO and group."""
    from slokit.engine import Evaluator
    from slokit.render import print_statuses
    from slokit.spec import load
    from slokit.store import DuckDBStore

    moment = _parse_time(at)
    if not db.exists():
        err.print(
            f"[red]error:[/] {db}: no event store here; load events with `slokit ingest "
            f"--db {db} FILE`, or try `slokit demo`"
        )
        raise typer.Exit(2)
    try:
        model = load(spec)
        with DuckDBStore(db) as store:
            statuses = Evaluator(model, store).evaluate(moment, slo)
    except SlokitError as exc:
        raise _fail(exc) from None
    if as_json:
        _dump(
            {
                "at": moment.isoformat().replace("+00:00", "Z"),
                "statuses": [s.to_dict(timeline=timeline) for s in statuses],
            }
        )
    else:
        print_statuses(out, statuses, moment)


@app.command()
def serve(
    db: DbOpt = Path("slokit.duckdb"),
    spec: Annotated[
        Path | None,
        typer.Option("--spec", envvar="SLOKIT_SPEC", help="Spec to serve statuses for."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SLOKIT_TOKEN", help="Require this bearer token on every /v1/ route."
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body in bytes (413 above).")
    ] = 32 << 20,
    alerts: Annotated[
        bool,
        typer.Option(
            "--alerts/--no-alerts",
            help="With --spec, evaluate alerts every alerting.interval and notify receivers.",
        ),
    ] = True,
    gateway: Annotated[
        Path | None,
        typer.Option(
            "--gateway",
            help="Also run the inference gateway of this config (kind: gateway) in this "
            "process, writing its events straight to the store.",
        ),
    ] = None,
) -> None:
    """Run the HTTP server: ingest API, OTLP receiver, statuses, alerts, metrics."""
    import uvicorn

    from slokit.server.app import ServerConfig, create_app

    try:
        gw = None
        if gateway is not None:
            from slokit.cli_gateway import load_config
            from slokit.gateway.runner import tune_runtime

            gw = load_config(gateway, None)
            tune_runtime()
        config = ServerConfig(
            db=db, spec=spec, token=token, max_body=max_body, alerts=alerts, gateway=gw
        )
        application = create_app(config)
    except SlokitError as exc:
        raise _fail(exc) from None
    err.print(f"slokit serving {db} on http://{host}:{port}")
    if gw is not None:
        err.print(f"slokit gateway on http://{gw.host}:{gw.port}")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
def demo(
    db: DbOpt = Path("slokit-demo.duckdb"),
    spec_out: Annotated[
        Path, typer.Option("--spec-out", help="Where to write the demo spec.")
    ] = Path("slokit-demo.yaml"),
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same traffic.")] = 7,
    days: Annotated[int, typer.Option("--days", help="Days of history.")] = 30,
    rate: Annotated[float, typer.Option("--rate", help="Mean requests per minute.")] = 60.0,
    end: Annotated[
        str | None, typer.Option("--end", help="End of the generated history (default: now).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate 30 days of LLM traffic with scripted incidents, then show its status."""
    from slokit.demo.run import run_demo
    from slokit.render import print_statuses
    from slokit.store.segments import remove_store

    moment = _parse_time(end).replace(second=0, microsecond=0)
    remove_store(db)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed}/{task.total} days",
        console=err,
        disable=as_json or not err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task("generating traffic", total=days)
        try:
            result = run_demo(
                db,
                spec_out,
                end=moment,
                days=days,
                rate=rate,
                seed=seed,
                progress=lambda n: bar.update(task, completed=n),
            )
        except SlokitError as exc:
            raise _fail(exc) from None
    if as_json:
        _dump(result.to_dict())
        return
    out.print(
        f"generated {result.requests:,} requests and {result.scores:,} scores over {days} days "
        f"into {db}; spec written to {spec_out}"
    )
    for inc in result.incidents:
        out.print(
            f"  scripted {inc.kind}: {inc.start:%Y-%m-%d %H:%M} - {inc.end:%H:%M} UTC: "
            f"{inc.description}"
        )
    print_statuses(out, result.statuses, moment)
    out.print(f"next: slokit status --db {db} --spec {spec_out} --json")


def _write_converted(text: str, notes: list[str], output: Path | None) -> None:
    for note in notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


@openslo_app.command("import")
def openslo_import(
    path: Annotated[Path, typer.Argument(help="OpenSLO v1 YAML (one or more documents).")],
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the slokit spec here (default: stdout)."),
    ] = None,
) -> None:
    """Convert OpenSLO v1 documents into a slokit spec."""
    from slokit.spec.openslo import import_openslo

    try:
        text, notes = import_openslo(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(SlokitError(f"{path}: cannot read: {exc.strerror}")) from None
    except SlokitError as exc:
        raise _fail(SlokitError(f"{path}: {exc}")) from None
    _write_converted(text, notes, output)


@openslo_app.command("export")
def openslo_export(
    spec: Annotated[Path, typer.Argument(help="slokit spec to convert.")],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write OpenSLO YAML here (default: stdout).")
    ] = None,
) -> None:
    """Convert a slokit spec into OpenSLO v1 documents (Service, SLI, SLO)."""
    from slokit.spec import load
    from slokit.spec.openslo import export_openslo

    try:
        text, notes = export_openslo(load(spec))
    except SlokitError as exc:
        raise _fail(exc) from None
    _write_converted(text, notes, output)


cli_alerting.register(app)
cli_sla.register(app)
cli_cost.register(app)
cli_gateway.register(app)
cli_fakellm.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
