"""`slokit fake-llm`: run the fake OpenAI-compatible upstream (docs/fake-llm.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from slokit.cli_common import _fail, err
from slokit.errors import SlokitError


def _faults(specs: list[str], rate_5xx: float | None, rate_429: float | None) -> dict[str, float]:
    from slokit.fakellm.config import fault_kind

    rates: dict[str, float] = {}
    if rate_5xx is not None:  # split evenly between the two a server usually returns
        rates["500"] = rates["503"] = rate_5xx / 2
    if rate_429 is not None:
        rates["429"] = rate_429
    for spec in specs:
        kind, sep, value = spec.partition("=")
        try:
            if not sep:
                raise ValueError(f"{spec!r} is not KIND=RATE")
            rates[fault_kind(kind)] = float(value)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{exc} (e.g. --fault 503=0.01)", param_hint="--fault"
            ) from None
    return rates


def fake_llm(
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (YAML, `kind: fake-llm`).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Interface (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default 8001; 0 picks a free one).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the content and of every draw.")
    ] = None,
    ttft_ms: Annotated[
        str | None,
        typer.Option(
            "--ttft-ms",
            help="Time to first token, ms: a number, lognormal:MEDIAN:P99 or uniform:LOW:HIGH "
            "(default lognormal:150:600).",
        ),
    ] = None,
    itl_ms: Annotated[
        str | None,
        typer.Option(
            "--itl-ms", help="Inter-token latency, ms, same forms (default lognormal:20:50)."
        ),
    ] = None,
    output_tokens: Annotated[
        str | None,
        typer.Option("--output-tokens", help="Completion length, same forms (default 64)."),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option("--capacity", help="Requests served at full speed; past it delays stretch."),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option("--max-concurrency", help="Running requests past which --overload applies."),
    ] = None,
    overload: Annotated[
        str | None,
        typer.Option("--overload", help="Past --max-concurrency: reject (503) or queue."),
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Model names for /v1/models, comma-separated.")
    ] = None,
    content: Annotated[
        str | None, typer.Option("--content", help="lorem (seeded words) or numbered (tok1 ...).")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="KIND=RATE, KIND a status code or timeout, reset, disconnect, slow_first_byte "
            "(repeat).",
        ),
    ] = None,
    fault_rate_5xx: Annotated[
        float | None,
        typer.Option("--fault-rate-5xx", help="Share of requests answered 500 or 503 (half each)."),
    ] = None,
    fault_rate_429: Annotated[
        float | None, typer.Option("--fault-rate-429", help="Share of requests answered 429.")
    ] = None,
) -> None:
    """Run a fake OpenAI-compatible LLM server for tests, demos and benchmarks."""
    from slokit.fakellm import FakeLLMConfig, load_config, serve, with_overrides

    overrides: dict[str, Any] = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "seed": seed,
            "ttft_ms": ttft_ms,
            "itl_ms": itl_ms,
            "output_tokens": output_tokens,
            "capacity": capacity,
            "max_concurrency": max_concurrency,
            "overload": overload,
            "content": content,
        }.items()
        if value is not None
    }
    if models is not None:
        overrides["models"] = [m.strip() for m in models.split(",") if m.strip()]
    rates = _faults(fault or [], fault_rate_5xx, fault_rate_429)
    if rates:
        overrides["faults"] = {"rates": rates}
    try:
        cfg = load_config(config) if config is not None else FakeLLMConfig()
        cfg = with_overrides(cfg, overrides, "command line")
    except SlokitError as exc:
        raise _fail(exc) from None

    def ready(url: str) -> None:
        sys.stdout.write(f"fake-llm listening on {url}\n")
        sys.stdout.flush()
        err.print(
            f"ttft {cfg.ttft_ms.describe()} ms, itl {cfg.itl_ms.describe()} ms, "
            f"output {cfg.output_tokens.describe()} tokens, capacity {cfg.capacity}, "
            f"models {', '.join(cfg.models)}"
            + (f", faults {dict(cfg.faults.rates)}" if cfg.faults.rates else "")
        )

    try:
        serve(cfg, ready)
    except OSError as exc:
        err.print(f"[red]error:[/] cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("fake-llm")(fake_llm)
