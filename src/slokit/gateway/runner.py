"""Putting a gateway together and running it.

Three ways to run, one Gateway class:
- inside `slokit serve --gateway FILE`: events go straight to the server's store
  writer, protection reads the server's evaluator (`attach_to_server`);
- `slokit gateway --events-url URL`: every worker posts its events to the ingest API of
  a remote `slokit serve` and reads statuses from it (`run_worker`);
- `slokit gateway` with a local store: the process runs `slokit serve` on
  `--serve-port` and the gateway beside it; with `--workers N > 1` the N gateway
  workers are separate processes sharing the port (SO_REUSEPORT) and posting to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from slokit.gateway.config import GatewayConfig
from slokit.gateway.protection import Protector, evaluator_fetch, http_fetch
from slokit.gateway.proxy import Gateway
from slokit.gateway.sink import Deliver, EventSink, http_delivery, writer_delivery

log = logging.getLogger("slokit.gateway")


def build(config: GatewayConfig, deliver: Deliver) -> Gateway:
    """The gateway for `config`, with its price book, admission and rate limiter."""
    from slokit.cost import default_pricebook, load_pricebook

    ev = config.events
    sink = EventSink(
        deliver,
        ev.batch,
        ev.flush_interval_s,
        ev.buffer,
        deliver_interval_s=ev.deliver_interval_s,
        enabled=ev.enabled,
    )
    prices = load_pricebook(config.prices) if config.prices else default_pricebook()
    return Gateway(
        config,
        sink,
        prices=prices,
        admission=make_admission(config) if config.admission.enabled else None,
        ratelimiter=make_ratelimiter(config),
    )


def make_admission(config: GatewayConfig) -> Any:
    from slokit.gateway.admission import Admission, LimiterConfig

    a = config.admission
    limiter = LimiterConfig(
        initial_limit=a.initial_limit,
        min_limit=a.min_limit,
        max_limit=a.max_limit,
        tolerance=a.tolerance,
        queue_size=a.queue_size,
        slack_s=a.slack_ms / 1000.0,
        slow_start=True,
        decrease_smoothing=0.5,
        knee_rounds=a.knee_rounds,
        knee_growth=a.knee_growth,
    )
    yields = {p.tier: p.yield_share for p in config.protection}
    return Admission(
        config.tiers,
        [u.name for u in config.upstreams],
        limiter,
        max_queue=a.max_queue,
        yield_share=min(yields.values()) if yields else 0.5,
        reserve_window_s=a.reserve_window_s,
    )


def make_ratelimiter(config: GatewayConfig) -> Any:
    rl = config.rate_limits
    if rl.default is None and not rl.tenants:
        return None
    from slokit.core.ratelimit import Limits, RateLimiter

    base = rl.default.model_dump() if rl.default is not None else {}

    def limits(v: Any) -> Limits:
        # a tenant's entry overrides the fields it sets; the others stay the default's
        return Limits(**{**base, **v.model_dump(exclude_unset=True)})

    return RateLimiter(
        default=limits(rl.default) if rl.default is not None else None,
        tenants={name: limits(v) for name, v in rl.tenants.items()},
    )


def _protect(gateway: Gateway) -> Any:
    def apply(tier: str, on: bool) -> None:
        gateway.protected[tier] = on
        if gateway.admission is not None:
            gateway.admission.protect(tier, on)

    return apply


# -- inside `slokit serve` ------------------------------------------------------------


async def attach_to_server(server: Any, config: GatewayConfig) -> tuple[Gateway, Protector]:
    """Start a gateway in the running loop of a `slokit serve`, writing to its store."""
    gateway = build(config, writer_delivery(server.writer))
    await gateway.start()
    protector = Protector(config.protection, evaluator_fetch(server), _protect(gateway))
    if config.protection and server.evaluator is None:
        log.warning("protection rules need `slokit serve --spec`; they are off")
    elif config.protection:
        protector.start()
    return gateway, protector


# -- a worker posting to a remote `slokit serve` --------------------------------------


async def serve_remote(config: GatewayConfig, reuse_port: bool = False) -> None:
    """Run one gateway worker until SIGINT/SIGTERM, events to `config.events.url`."""
    import aiohttp

    url, token = config.events.url, config.events.token
    assert url is not None
    async with aiohttp.ClientSession() as session:
        gateway = build(config, http_delivery(session, url, token))
        await gateway.start(reuse_port=reuse_port)
        protector = Protector(config.protection, http_fetch(session, url, token), _protect(gateway))
        protector.start()
        await _until_stopped()
        await protector.stop()
        await gateway.stop()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def tune_runtime() -> None:
    """Process settings for a gateway's tail latency, chosen by measurement
    (bench/gateway_latency.py, 1,000 requests/s open loop; docs/gateway.md):
    - the cyclic garbage collector runs after 100,000 net allocations instead of 700:
      each request makes a few dicts, and frequent collections (and the full ones they
      lead to) were the gateway's slowest moments (p99.9 added 50 ms -> 10 ms);
    - the interpreter lock is handed over every 0.5 ms instead of 5 ms, so the event
      loop waits less behind the store writer and event conversion threads."""
    import gc
    import sys

    gc.set_threshold(100_000, 50, 1000)
    sys.setswitchinterval(0.0005)


def run_loop(coro: Any) -> None:
    """Run on uvloop when it is installed (measured faster; docs/gateway.md)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(coro)
        return
    uvloop.run(coro)


def worker_main(config: GatewayConfig, cpu: int | None = None) -> None:
    """Entry point of a worker process (multiprocessing, spawn), pinned to `cpu` when
    given (`slokit gateway --cpus`) before it starts any thread."""
    if cpu is not None:
        from slokit.gateway.cpus import pin

        pin([cpu])
    logging.basicConfig(level=logging.WARNING)
    tune_runtime()
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve_remote(config, reuse_port=True))
