"""`slokit alerts`, `slokit gate` and `slokit annotate`: read alert state, decide on a
release, record deploys and incidents. Each works on the store directly (`--db`) or
through a running `slokit serve` (`--server URL`), which holds the store's lock."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from slokit.cli_common import DbOpt, JsonOpt, SpecOpt, _dump, _fail, _parse_time, err, out
from slokit.errors import SlokitError, StoreError

alerts_app = typer.Typer(
    help="Firing and recent alerts, notification deliveries, and replay over history.",
    invoke_without_command=True,
)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="SLOKIT_SERVER",
        help="Ask a running `slokit serve` (e.g. http://127.0.0.1:8080) instead of the store.",
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="SLOKIT_TOKEN", help="Bearer token for --server.")
]
LimitOpt = Annotated[int, typer.Option("--limit", help="How many recent entries to show.")]


def _remote(server: str, path: str, token: str | None, params: dict[str, Any] | None = None) -> Any:
    import httpx

    headers = {"authorization": f"Bearer {token}"} if token else {}
    url = server.rstrip("/") + path
    try:
        r = httpx.get(url, params=params, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise StoreError(f"{url}: cannot reach the slokit server ({exc})") from None
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code >= 400:
        message = body.get("error", {}).get("message", r.text) if isinstance(body, dict) else r.text
        raise StoreError(f"{url}: {r.status_code} {message}")
    return body


def _open(db: Path) -> Any:
    from slokit.store import DuckDBStore

    if not db.exists():
        raise StoreError(f"{db}: no event store here; pass --db, or --server URL")
    return DuckDBStore(db)


def _group(group: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(group.items())) or "-"


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    db: DbOpt = Path("slokit.duckdb"),
    server: ServerOpt = None,
    token: TokenOpt = None,
    limit: LimitOpt = 20,
    as_json: JsonOpt = False,
) -> None:
    """List firing (and pending) alerts and the latest fire/resolve transitions."""
    if ctx.invoked_subcommand is not None:
        return
    from slokit.alerting.engine import Alert

    try:
        if server:
            body = _remote(server, "/v1/alerts", token, {"limit": limit})
            active, recent = body["alerts"], body["recent"]
        else:
            with _open(db) as store:
                states = [Alert.from_row(r) for r in store.alert_states()]
                active = [a.to_dict() for a in states if a.active]
                recent = store.alert_log(limit)
    except SlokitError as exc:
        raise _fail(exc) from None
    if as_json:
        _dump({"alerts": active, "recent": recent})
        return
    table = Table(title=f"{len(active)} active alert(s)", title_justify="left")
    for col in ("state", "severity", "SLO", "group", "since", "burn", "budget left"):
        table.add_column(col)
    for a in active:
        d = a.get("detail") or {}
        left = d.get("budget_remaining")
        table.add_row(
            a["state"],
            a["severity"],
            a["slo"],
            _group(a["group"]),
            str(a["fired_at"] or a["pending_since"]),
            "no data" if a["reason"] == "no_data" else f"{d.get('long_burn') or 0:.1f}x",
            "-" if left is None else f"{left * 100:.1f}%",
        )
    out.print(table)
    if recent:
        log = Table(title="recent transitions", title_justify="left")
        for col in ("time", "action", "severity", "SLO", "group"):
            log.add_column(col)
        for r in recent:
            grp = json.loads(r["grp"]) if isinstance(r["grp"], str) else r["grp"]
            log.add_row(str(r["ts"]), r["action"], r["severity"], r["slo"], _group(grp))
        out.print(log)


@alerts_app.command("deliveries")
def deliveries(
    db: DbOpt = Path("slokit.duckdb"),
    server: ServerOpt = None,
    token: TokenOpt = None,
    limit: LimitOpt = 50,
    as_json: JsonOpt = False,
) -> None:
    """The notification delivery log: receiver, attempts, outcome."""
    try:
        if server:
            rows = _remote(server, "/v1/alerts/deliveries", token, {"limit": limit})["deliveries"]
        else:
            with _open(db) as store:
                rows = store.deliveries(limit)
    except SlokitError as exc:
        raise _fail(exc) from None
    if as_json:
        _dump({"deliveries": rows})
        return
    table = Table(title=f"{len(rows)} deliveries", title_justify="left")
    for col in ("finished", "receiver", "action", "SLO", "severity", "attempts", "result"):
        table.add_column(col)
    for r in rows:
        result = "ok" if r["ok"] else f"failed: {r['error'] or r['status']}"
        table.add_row(
            str(r["finished_at"]),
            r["receiver"],
            r["action"],
            r["slo"],
            r["severity"],
            str(r["attempts"]),
            result,
        )
    out.print(table)


@alerts_app.command("replay")
def replay_cmd(
    start: Annotated[str, typer.Option("--from", help="Start of the replay (RFC 3339).")],
    end: Annotated[str, typer.Option("--to", help="End of the replay (RFC 3339).")],
    spec: SpecOpt = Path("slokit.yaml"),
    db: DbOpt = Path("slokit.duckdb"),
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Alert policy to try instead of the spec's (YAML)."),
    ] = None,
    step: Annotated[
        str | None, typer.Option("--step", help="Evaluation interval (default: the spec's).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Backtest the alert policy over history: each alert's fire and resolve times,
    detection time per annotated incident, budget spent when it fired."""
    from rich.progress import Progress

    from slokit.alerting.replay import replay
    from slokit.core.durations import parse_seconds
    from slokit.spec import load
    from slokit.spec.policy_file import with_policy

    try:
        model = load(spec)
        if policy is not None:
            model = with_policy(model, policy)
        step_s = parse_seconds(step) if step else None
        with _open(db) as store, Progress(console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("replaying", total=None)
            report = replay(
                model,
                store,
                _parse_time(start),
                _parse_time(end),
                step_seconds=step_s,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (SlokitError, ValueError) as exc:
        raise _fail(exc if isinstance(exc, SlokitError) else SlokitError(str(exc))) from None
    data = report.to_dict()
    if as_json:
        _dump(data)
        return
    out.print(
        f"{report.ticks} evaluations every {report.step_seconds}s from {data['from']} "
        f"to {data['to']}: {len(report.episodes)} alert(s)"
    )
    table = Table()
    for col in ("fired", "resolved", "severity", "SLO", "group", "windows", "budget spent"):
        table.add_column(col)
    for e in report.episodes:
        table.add_row(
            str(e.fired_at),
            str(e.resolved_at or "still firing"),
            e.severity,
            e.slo,
            _group(e.group),
            "no data" if e.reason == "no_data" else "/".join(e.detail.get("windows") or []),
            "-" if e.budget_consumed is None else f"{e.budget_consumed * 100:.1f}%",
        )
    out.print(table)
    for d in report.incidents:
        row = d.to_dict()
        after = row["detected_after_minutes"]
        caught = "not detected" if after is None else f"detected after {after:.1f} min"
        paged = row["paged_after_minutes"]
        out.print(
            f"incident {row['ts']} ({d.text or ''}): {caught}"
            + ("" if paged is None else f", paged after {paged:.1f} min")
        )


def gate(
    service: Annotated[str, typer.Option("--service", help="The service to release.")],
    change: Annotated[
        str, typer.Option("--change", help="feature, fix or security (what the release is).")
    ] = "feature",
    at: Annotated[str | None, typer.Option("--at", help="Decide as of this time.")] = None,
    spec: SpecOpt = Path("slokit.yaml"),
    db: DbOpt = Path("slokit.duckdb"),
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release gate from the error-budget policy: exit 0 to ship, 1 to hold."""
    from slokit.alerting.engine import Alert
    from slokit.alerting.gate import CHANGES, decide
    from slokit.engine import Evaluator
    from slokit.spec import load

    if change not in CHANGES:
        raise typer.BadParameter(f"--change must be one of {', '.join(CHANGES)}")
    try:
        if server:
            params = {"service": service, "change": change}
            if at:
                params["at"] = _parse_time(at).isoformat()
            data = _remote(server, "/v1/gate", token, params)
        else:
            model = load(spec)
            if model.service != service:
                raise SlokitError(f"{spec} is the spec of {model.service!r}, not {service!r}")
            moment = _parse_time(at)
            with _open(db) as store:
                statuses = Evaluator(model, store).evaluate(moment)
                firing = [
                    a
                    for a in (Alert.from_row(r) for r in store.alert_states())
                    if a.state.state == "firing"
                ]
            data = decide(model, statuses, firing, change, moment).to_dict()
    except SlokitError as exc:
        raise _fail(exc) from None
    ship = data["decision"] == "ship"
    if as_json:
        _dump(data)
    else:
        colour = {"ok": "green", "caution": "yellow", "frozen": "red"}[data["state"]]
        out.print(
            f"[{colour}]{data['state'].upper()}[/]: {data['decision'].upper()} "
            f"({change} change to {service})"
        )
        for r in data["reasons"]:
            out.print(f"  - {r['message']}")
        for p in data["postmortems_required"]:
            others = len({h["slo"] for h in p["slos"]}) - 1
            more = f" (and {others} more SLO(s))" if others else ""
            out.print(
                f"  - postmortem required: {p['kind']} at {p['ts']} ({p['text'] or ''}) spent "
                f"{p['budget_spent'] * 100:.1f}% of {p['slo']}'s budget{more}"
            )
    raise typer.Exit(0 if ship else 1)


def annotate(
    service: Annotated[str, typer.Option("--service", help="The service it concerns.")],
    kind: Annotated[str, typer.Option("--kind", help="deploy, incident, maintenance, config.")],
    text: Annotated[str, typer.Option("--text", help="What happened (a version, a summary).")],
    at: Annotated[str | None, typer.Option("--at", help="When (default: now).")] = None,
    db: DbOpt = Path("slokit.duckdb"),
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Record a deploy or an incident; statuses and the gate report what each cost."""
    from slokit.events.validate import validate_records

    record = {
        "event_id": str(uuid.uuid4()),
        "ts": _parse_time(at).isoformat(),
        "service": service,
        "kind": kind,
        "text": text,
    }
    checked = validate_records([record], "annotation")
    if checked.rejected:
        raise _fail(SlokitError(checked.rejected[0].reason))
    try:
        if server:
            import httpx

            headers = {"authorization": f"Bearer {token}"} if token else {}
            r = httpx.post(
                server.rstrip("/") + "/v1/annotations", json=[record], headers=headers, timeout=30
            )
            if r.status_code >= 400:
                raise SlokitError(f"{server}: {r.status_code} {r.text}")
        else:
            from slokit.store import DuckDBStore

            with DuckDBStore(db) as store:
                store.append("annotation", checked.table)
    except SlokitError as exc:
        raise _fail(exc) from None
    err.print(f"recorded {kind} for {service} at {record['ts']}")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.command()(gate)
    app.command()(annotate)
