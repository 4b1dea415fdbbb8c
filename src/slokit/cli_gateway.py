"""`slokit gateway`: the OpenAI-compatible inference gateway (docs/gateway.md), and
`slokit gateway hash-key` for the hashed API keys its config stores."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from slokit.cli_common import DbOpt, _fail, err, out
from slokit.errors import SlokitError
from slokit.gateway.config import EventsV1, GatewayConfig

gateway_app = typer.Typer(
    help="Run the inference gateway: an OpenAI-compatible proxy that measures every "
    "request, admits by tier and sheds load to protect objectives.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def load_config(config: Path | None, upstream: list[str] | None) -> GatewayConfig:
    from slokit.gateway.config import load_gateway, with_upstreams

    cfg = load_gateway(config) if config is not None else GatewayConfig()
    if upstream:
        cfg = with_upstreams(cfg, upstream)
    if not cfg.upstreams:
        raise typer.BadParameter("give --upstream URL or a config with `upstreams:`")
    return cfg


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            help="OpenAI-compatible server to forward to (repeat for several; replaces the "
            "config's upstreams).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Gateway config file (kind: gateway).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface (default 127.0.0.1).")] = (
        None
    ),
    port: Annotated[int | None, typer.Option("--port", help="Gateway port (default 8000).")] = (
        None
    ),
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Gateway processes sharing the port.")
    ] = 1,
    cpus: Annotated[
        str | None,
        typer.Option(
            "--cpus",
            envvar="SLOKIT_GATEWAY_CPUS",
            help="Pin worker i to the i-th of these CPUs, in turn (e.g. 0, 0,1 or 2-3; auto: "
            "one CPU a worker from the lowest); the local store runs on the CPUs left over. "
            "Default (or empty): no pinning.",
        ),
    ] = None,
    events_url: Annotated[
        str | None,
        typer.Option(
            "--events-url",
            envvar="SLOKIT_EVENTS_URL",
            help="Send events to this `slokit serve` instead of a local store.",
        ),
    ] = None,
    events_token: Annotated[
        str | None,
        typer.Option("--events-token", envvar="SLOKIT_TOKEN", help="Bearer token for it."),
    ] = None,
    db: DbOpt = Path("slokit.duckdb"),
    spec: Annotated[
        Path | None,
        typer.Option("--spec", envvar="SLOKIT_SPEC", help="Spec (for protection rules)."),
    ] = None,
    serve_port: Annotated[
        int, typer.Option("--serve-port", help="Port of the local `slokit serve` (store API).")
    ] = 8080,
) -> None:
    """Run the gateway (see `slokit gateway hash-key` for API keys)."""
    if ctx.invoked_subcommand is not None:
        return
    from slokit.gateway.runner import tune_runtime

    tune_runtime()
    try:
        cfg = load_config(config, upstream)
    except SlokitError as exc:
        raise _fail(exc) from None
    cfg = replace(cfg, host=host or cfg.host, port=cfg.port if port is None else port)
    pinned = _cpus(cpus, workers)
    if events_url or cfg.events.url:
        url = events_url or cfg.events.url
        cfg = replace(cfg, events=_events(cfg, url, events_token or cfg.events.token))
        where = f", workers on CPU {','.join(map(str, pinned))}" if pinned else ""
        err.print(f"slokit gateway on http://{cfg.host}:{cfg.port}, events to {url}{where}")
        _run_workers(cfg, workers, pinned)
        return
    _run_local(cfg, workers, db, spec, serve_port, pinned)


def _cpus(text: str | None, workers: int) -> tuple[int, ...]:
    """`--cpus`, checked against the CPUs this process may use; () when not given or
    empty (`SLOKIT_GATEWAY_CPUS=` turns pinning off)."""
    if text is None or not text.strip():
        return ()
    from slokit.gateway.cpus import auto_cpus, check_cpus, parse_cpu_list, usable

    allowed = usable()
    try:
        cpus = auto_cpus(allowed, workers) if text == "auto" else parse_cpu_list(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cpus") from None
    problem = check_cpus(cpus, allowed)
    if problem:
        raise typer.BadParameter(problem, param_hint="--cpus")
    return cpus


def _worker_cpus(cpus: tuple[int, ...], workers: int) -> list[int | None]:
    from slokit.gateway.cpus import worker_cpu

    return [worker_cpu(cpus, i) if cpus else None for i in range(workers)]


def _events(cfg: GatewayConfig, url: str | None, token: str | None) -> EventsV1:
    return cfg.events.model_copy(update={"url": url, "token": token})


def _run_workers(cfg: GatewayConfig, workers: int, cpus: tuple[int, ...]) -> None:
    from slokit.gateway.runner import run_loop, serve_remote, worker_main

    places = _worker_cpus(cpus, workers)
    if workers == 1:
        if places[0] is not None:
            from slokit.gateway.cpus import pin

            pin([places[0]])
        run_loop(serve_remote(cfg))
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(cfg, cpu), daemon=True) for cpu in places]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()


def _run_local(
    cfg: GatewayConfig,
    workers: int,
    db: Path,
    spec: Path | None,
    serve_port: int,
    cpus: tuple[int, ...],
) -> None:
    """A local store: `slokit serve` in this process on 127.0.0.1, and the gateway in
    worker processes posting their events to it, one worker too: the store's appends, a
    few every 5 s, stalled the event loop of a gateway in the same process by 10-50 ms
    each (docs/gateway.md, "Ways to run it"). With `--cpus` the store is pinned to the
    CPUs the workers leave free, before DuckDB starts its threads."""
    import uvicorn

    from slokit.server.app import ServerConfig, create_app

    placement = ""
    if cpus:
        from slokit.gateway.cpus import format_cpus, pin, store_cpus, usable

        store = store_cpus(cpus, usable())
        pin(store)
        placement = (
            f", workers on CPU {','.join(map(str, cpus))}, store on CPU {format_cpus(store)}"
        )

    server_config = ServerConfig(db=db, spec=spec, alerts=False)
    try:
        application = create_app(server_config)
    except SlokitError as exc:
        raise _fail(exc) from None
    err.print(
        f"slokit gateway on http://{cfg.host}:{cfg.port} ({workers} worker(s)); "
        f"store {db} served on http://127.0.0.1:{serve_port}{placement}"
    )
    # On SIGINT/SIGTERM stop the workers first (each delivers its buffered events to the
    # store server, still up), then the store server.
    from slokit.gateway.runner import worker_main

    wcfg = replace(cfg, events=_events(cfg, f"http://127.0.0.1:{serve_port}", None))
    ctx = multiprocessing.get_context("spawn")
    places = _worker_cpus(cpus, workers)
    procs = [ctx.Process(target=worker_main, args=(wcfg, cpu)) for cpu in places]
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=serve_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="slokit-serve")
    thread.start()  # not the main thread: uvicorn leaves the signals to us
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for p in procs:
        p.start()
    while not stop.wait(0.5):
        if not thread.is_alive() or not any(p.is_alive() for p in procs):
            break
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the worker drains and delivers its events
    for p in procs:
        p.join(30)
    server.should_exit = True
    thread.join()


@gateway_app.command("hash-key")
def hash_key_cmd(
    key: Annotated[str, typer.Argument(help="The API key a tenant will send.")],
) -> None:
    """Print the SHA-256 digest to put under `keys:` in the gateway config."""
    from slokit.gateway.config import hash_key

    out.print(hash_key(key))


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
