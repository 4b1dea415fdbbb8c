"""The overload scenario as a benchmark: mixed-tier streaming traffic at about 3x an
upstream's capacity through `slokit gateway` (default tiers, admission on), per tier.

Upstream: `slokit fake-llm --capacity 8 --ttft-ms 100 --itl-ms 10 --output-tokens 20`: a
request takes 100 + 19 x 10 = 290 ms at full speed and past 8 running requests every delay
stretches by n/8, so the fake completes at most about 8 / 0.29 = 27.6 requests/s whatever
the concurrency (`capacity_rps` below). The gateway gets a config file with one API key per
default tier (platinum, gold, silver, bronze), stored as SHA-256 digests
(`slokit.gateway.config.hash_key`, as `slokit gateway hash-key` prints).

Load: an open-loop asyncio+aiohttp client in this file (one process, uvloop, pinned to
`--cpus` once the servers run): Poisson arrivals at `--load` x capacity (default 3x,
about 83 requests/s) for `--duration` s (20), each a streaming chat completion sent with
the key of a tier drawn at random with `--mix` (10% platinum, 20% gold, 30% silver, 40%
bronze), seeded. Times are measured from each request's scheduled arrival. Before it,
`--warmup` s (5) at half the capacity, not counted, let the adaptive limiter learn the
upstream's unloaded latency (its long-run average; the limit itself stays near its
initial 8, doubled at most by a burst, as the limiter holds still while fewer than half
the limit are in flight and slow start doubles only on samples taken at the limit).

Per tier: offered, admitted (200 and the stream complete to `[DONE]`), shed (503), other
errors (other statuses, broken streams, transport errors, client timeouts), p50/p99 TTFT of
the admitted, and SLO attainment: the share of *offered* requests answered 200 with a TTFT
<= the tier's objective, taken as the tier's `max_queue_wait_ms` + the fake's nominal TTFT
(100 ms): platinum 350 ms, gold 1,100 ms, silver 2,100 ms, bronze 4,100 ms. Also:
whether anything was left hanging (every request must have its answer or error before the
end of the load + `--timeout`), the gateway's own counters (admitted, shed by reason), its
concurrency limit and the upstream's concurrency sampled every 0.5 s, and the achieved
goodput against the capacity.

    .venv/bin/python bench/gateway_overload.py
    .venv/bin/python bench/gateway_overload.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_latency import (
    busy_during,
    fake_llm,
    gateway,
    http_get,
    json_line,
    log,
    metric,
    new_loop,
    parse_cpus,
    quiet,
    r2,
)
from slokit.core.admission import DEFAULT_TIERS
from slokit.gateway.config import hash_key
from wrk_load import Percentiles, auth_headers, chat_body, chat_url

FAKE = {"capacity": 8, "ttft_ms": 100.0, "itl_ms": 10.0, "tokens": 20}
TIERS = [t.name for t in DEFAULT_TIERS]  # platinum, gold, silver, bronze
MIX = "platinum=0.1,gold=0.2,silver=0.3,bronze=0.4"


def capacity_rps(capacity: int, ttft_ms: float, itl_ms: float, tokens: int) -> float:
    return capacity / ((ttft_ms + (tokens - 1) * itl_ms) / 1000)


def objectives_ms(fake_ttft_ms: float) -> dict[str, float]:
    return {t.name: t.max_queue_wait_ms + fake_ttft_ms for t in DEFAULT_TIERS}


def parse_mix(text: str) -> dict[str, float]:
    """'platinum=0.1,gold=0.2' -> {"platinum": 0.1, "gold": 0.2} ('' -> {})."""
    return {k: float(v) for k, v in (x.split("=") for x in text.split(",") if x)}


def write_config(
    path: Path, admission: str = "", reserve: dict[str, float] | None = None
) -> dict[str, str]:
    """A gateway config with one key per default tier (and `admission`, a YAML mapping,
    when given; `reserve`: tier -> reserved_share, the default tiers otherwise); returns
    tier -> key."""
    keys = {tier: f"sk-bench-{tier}-{os.urandom(6).hex()}" for tier in TIERS}
    lines = ["apiVersion: slokit/v1", "kind: gateway", "keys:"]
    if admission:
        lines.insert(2, f"admission: {admission}")
    if reserve:
        lines.insert(2, "tiers:")
        for i, t in enumerate(DEFAULT_TIERS):
            share = reserve.get(t.name, t.reserved_share)
            lines.insert(
                3 + i,
                f"  - {{name: {t.name}, priority: {t.priority}, reserved_share: {share}, "
                f"max_queue_wait_ms: {t.max_queue_wait_ms}, deadline_ms: {t.deadline_ms}}}",
            )
    for tier, key in keys.items():
        lines.append(f"  - {{sha256: {hash_key(key)}, tenant: tenant-{tier}, tier: {tier}}}")
    path.write_text("\n".join(lines) + "\n")
    return keys


# ---------------------------------------------------------------- the open-loop client


class Row:
    __slots__ = ("chunks", "done", "end", "error", "status", "t0", "tier", "ttft")

    def __init__(self, tier: str, t0: float) -> None:
        self.tier, self.t0 = tier, t0
        self.status = 0
        self.ttft: float | None = None  # s from the scheduled arrival
        self.end: float | None = None
        self.done = False  # [DONE] received
        self.chunks = 0
        self.error: str | None = None


async def one(session: Any, url: str, body: bytes, headers: dict[str, str], row: Row) -> None:
    import aiohttp

    try:
        async with session.post(url, data=body, headers=headers) as r:
            row.status = r.status
            if r.status != 200:
                await r.read()
                return
            async for line in r.content:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    row.done = True
                    continue
                row.chunks += 1
                if row.ttft is None:
                    try:
                        choices = json.loads(data).get("choices") or [{}]
                    except ValueError:
                        continue
                    if (choices[0].get("delta") or {}).get("content"):
                        row.ttft = time.perf_counter() - row.t0
    except TimeoutError:
        row.error = "client_timeout"
    except aiohttp.ClientPayloadError:
        row.error = "broken_stream"
    except Exception as e:
        row.error = type(e).__name__
    finally:
        row.end = time.perf_counter() - row.t0


async def sampler(session: Any, gw: str, fake: str, out: list[dict[str, Any]]) -> None:
    """Every 0.5 s: the gateway's concurrency limit and in-flight, its queue, the fake's
    running requests."""
    t0 = time.perf_counter()
    while True:
        try:
            async with session.get(f"{gw}/metrics") as r:
                text = await r.text()
            async with session.get(f"{fake}/fake/stats") as r:
                stats = await r.json()
            out.append(
                {
                    "t": round(time.perf_counter() - t0, 2),
                    "limit": metric(text, "slokit_gateway_concurrency_limit"),
                    "in_flight": metric(text, "slokit_gateway_in_flight"),
                    "queued": metric(text, "slokit_gateway_queue_length"),
                    "fake_running": stats.get("running", 0),
                }
            )
        except Exception as e:  # a missed sample is no reason to stop the benchmark
            out.append({"t": round(time.perf_counter() - t0, 2), "error": type(e).__name__})
        await asyncio.sleep(0.5)


async def drive(
    url: str,
    keys: dict[str, str],
    mix: dict[str, float],
    rate: float,
    duration: float,
    timeout: float,
    rng: random.Random,
    samples: tuple[str, str, list[dict[str, Any]]] | None = None,
) -> tuple[list[Row], int, float]:
    """Poisson arrivals at `rate`/s for `duration` s; returns (rows, hanging, lag p99 ms)."""
    import aiohttp

    url = chat_url(url)
    body = json.dumps(chat_body(max_tokens=64, stream=True)).encode()
    headers = {t: auth_headers(k) for t, k in keys.items()}
    tiers, weights = list(mix), list(mix.values())
    rows: list[Row] = []
    tasks: set[asyncio.Task[None]] = set()
    lags: list[float] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    tmo = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=tmo) as session:
        sample_task = None
        if samples is not None:
            gw, fake, out = samples
            sample_task = asyncio.create_task(sampler(session, gw, fake, out))
        start = time.perf_counter()
        at = start
        end = start + duration
        while True:
            at += rng.expovariate(rate)
            if at >= end:
                break
            tier = rng.choices(tiers, weights)[0]
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - at)
            row = Row(tier, at)
            rows.append(row)
            t = asyncio.create_task(one(session, url, body, headers[tier], row))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        # every request must end by the end of the load + the timeout (+ 2 s of slack)
        if tasks:
            await asyncio.wait(
                set(tasks), timeout=max(0.0, end + timeout + 2 - time.perf_counter())
            )
        hanging = len(tasks)
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for row in rows:
            if row.end is None or (row.error is None and row.status == 0):
                row.error = row.error or "hanging"
        if sample_task is not None:
            sample_task.cancel()
            await asyncio.gather(sample_task, return_exceptions=True)
    lag_p99 = Percentiles.of(x * 1000 for x in lags).p99
    return rows, hanging, lag_p99


# ---------------------------------------------------------------- figures


def tier_table(rows: list[Row], objectives: dict[str, float]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for tier in TIERS:
        mine = [r for r in rows if r.tier == tier]
        admitted = [r for r in mine if r.status == 200 and r.done and r.error is None]
        shed = [r for r in mine if r.status == 503]
        errors: dict[str, int] = {}
        for r in mine:
            if (r.status == 200 and r.done and r.error is None) or r.status == 503:
                continue
            kind = r.error or (f"http_{r.status}" if r.status != 200 else "incomplete_stream")
            errors[kind] = errors.get(kind, 0) + 1
        ttft = Percentiles.of(r.ttft * 1000 for r in admitted if r.ttft is not None)
        obj = objectives[tier]
        good = sum(1 for r in admitted if r.ttft is not None and r.ttft * 1000 <= obj)
        offered = len(mine)
        out[tier] = {
            "offered": offered,
            "admitted": len(admitted),
            "shed": len(shed),
            "other_errors": sum(errors.values()),
            "errors": errors,
            "ttft_p50_ms": r2(ttft.p50),
            "ttft_p99_ms": r2(ttft.p99),
            "ttft_max_ms": r2(ttft.max),
            "objective_ms": obj,
            "within_objective": good,
            "slo_attainment": round(good / offered, 4) if offered else math.nan,
            "admitted_attainment": round(good / len(admitted), 4) if admitted else math.nan,
        }
    return out


def gateway_counters(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tier in TIERS:
        reasons = {}
        for reason in ("predicted_wait", "deadline", "queue_full", "evicted"):
            n = metric(text, "slokit_gateway_shed_total", {"tier": tier, "reason": reason})
            if n:
                reasons[reason] = int(n)
        out[tier] = {
            "admitted": int(metric(text, "slokit_gateway_admitted_total", {"tier": tier})),
            "shed": int(metric(text, "slokit_gateway_shed_total", {"tier": tier})),
            "shed_by_reason": reasons,
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    cap = capacity_rps(FAKE["capacity"], FAKE["ttft_ms"], FAKE["itl_ms"], FAKE["tokens"])
    rate = args.load * cap
    mix = parse_mix(args.mix)
    objectives = objectives_ms(FAKE["ttft_ms"])
    cpus = parse_cpus(args.cpus)
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "benchmark": "gateway_overload",
        "fake": {**FAKE, "capacity_rps": round(cap, 1)},
        "offered_rps": round(rate, 1),
        "load_x_capacity": args.load,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "reserved_shares": {t.name: t.reserved_share for t in DEFAULT_TIERS}
        | parse_mix(args.reserve),
        "mix": mix,
        "objectives_ms": objectives,
        "objective_rule": "tier max_queue_wait_ms + the fake's nominal TTFT (100 ms)",
    }
    fake_args = ["--capacity", str(FAKE["capacity"]), "--ttft-ms", str(FAKE["ttft_ms"])]
    fake_args += ["--itl-ms", str(FAKE["itl_ms"]), "--output-tokens", str(FAKE["tokens"])]
    old_affinity = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="gw-overload-") as t:
        tmp = Path(t)
        keys = write_config(tmp / "gateway.yaml", args.admission, parse_mix(args.reserve))
        with (
            fake_llm(tmp, *fake_args) as fake,
            gateway(tmp, fake, config=tmp / "gateway.yaml") as gw,
        ):
            loop = new_loop()
            try:
                if cpus:
                    os.sched_setaffinity(0, cpus)
                if args.warmup > 0:
                    log(f"warm-up: {args.warmup:.0f} s at {cap / 2:.1f} req/s (not counted)")
                    loop.run_until_complete(
                        drive(gw["url"], keys, mix, cap / 2, args.warmup, args.timeout, rng)
                    )
                quiet("overload")
                log(
                    f"overload: {rate:.1f} req/s ({args.load:g} x {cap:.1f}) for "
                    f"{args.duration:.0f} s, mix {args.mix}"
                )
                samples: list[dict[str, Any]] = []
                _, before = http_get(f"{gw['url']}/metrics", timeout=10)
                (rows, hanging, lag_p99), busy, foreign = busy_during(
                    lambda: loop.run_until_complete(
                        drive(
                            gw["url"],
                            keys,
                            mix,
                            rate,
                            args.duration,
                            args.timeout,
                            rng,
                            (gw["url"], fake, samples),
                        )
                    )
                )
                _, after = http_get(f"{gw['url']}/metrics", timeout=10)
            finally:
                loop.close()
                os.sched_setaffinity(0, old_affinity)
    per_tier = tier_table(rows, objectives)
    c0, c1 = gateway_counters(before.decode()), gateway_counters(after.decode())
    counters = {
        tier: {
            "admitted": c1[tier]["admitted"] - c0[tier]["admitted"],
            "shed": c1[tier]["shed"] - c0[tier]["shed"],
            "shed_by_reason": {
                k: v - c0[tier]["shed_by_reason"].get(k, 0)
                for k, v in c1[tier]["shed_by_reason"].items()
                if v - c0[tier]["shed_by_reason"].get(k, 0)
            },
        }
        for tier in TIERS
    }
    ok_rows = [r for r in rows if r.status == 200 and r.done and r.error is None]
    # 200s completed per second, from the first arrival to the last completion
    span = max((r.t0 + (r.end or 0) for r in ok_rows), default=0) - min(r.t0 for r in rows)
    goodput = len(ok_rows) / max(span, args.duration) if ok_rows else 0.0
    limits = [s["limit"] for s in samples if "limit" in s]
    running = [s["fake_running"] for s in samples if "fake_running" in s]
    result.update(
        {
            "offered": len(rows),
            "tiers": per_tier,
            "gateway_counters": counters,
            "hanging": hanging,
            "all_answered": hanging == 0 and all(r.end is not None for r in rows),
            "goodput_rps": round(goodput, 1),
            "goodput_over_capacity": round(goodput / cap, 2),
            "concurrency_limit": {
                "min": min(limits, default=math.nan),
                "max": max(limits, default=math.nan),
                "last": limits[-1] if limits else math.nan,
            },
            "fake_running_mean": round(sum(running) / len(running), 1) if running else math.nan,
            "fake_running_max": max(running, default=math.nan),
            "client_lag_p99_ms": r2(lag_p99),
            "busy": round(busy, 3),
            "foreign_busy": round(foreign, 3),
            "disturbed": foreign > 0.08,
            "samples": samples,
        }
    )
    return result


def table(r: dict[str, Any]) -> str:
    lines = [
        f"overload: {r['offered_rps']:.1f} req/s offered ({r['load_x_capacity']:g} x the fake's "
        f"{r['fake']['capacity_rps']} req/s capacity), {r['duration_s']:.0f} s, streaming, "
        f"{r['offered']} requests",
        f"  SLO attainment = offered requests answered 200 with TTFT <= objective; objective = "
        f"{r['objective_rule']}",
        f"  {'tier':9} {'offered':>7} {'admitted':>8} {'shed':>5} {'errors':>6} "
        f"{'TTFT p50':>9} {'TTFT p99':>9} {'objective':>9} {'attained':>8}  gateway shed reasons",
    ]
    for tier, x in r["tiers"].items():
        reasons = r["gateway_counters"][tier]["shed_by_reason"]
        lines.append(
            f"  {tier:9} {x['offered']:7} {x['admitted']:8} {x['shed']:5} "
            f"{x['other_errors']:6} {x['ttft_p50_ms']:9.1f} {x['ttft_p99_ms']:9.1f} "
            f"{x['objective_ms']:9.0f} {x['slo_attainment']:8.1%}  "
            f"{', '.join(f'{k} {v}' for k, v in reasons.items()) or '-'}"
            + (f"  errors {x['errors']}" if x["errors"] else "")
        )
    cl = r["concurrency_limit"]
    lines += [
        f"  goodput {r['goodput_rps']} req/s ({r['goodput_over_capacity']:.0%} of capacity); "
        f"gateway concurrency limit {cl['min']:g}..{cl['max']:g} (last {cl['last']:g}); fake "
        f"running mean {r['fake_running_mean']} max {r['fake_running_max']}",
        "  gateway limit / in flight / queued / fake running, every 2 s: "
        + " ".join(
            f"{s['limit']:.0f}/{s['in_flight']:.0f}/{s['queued']:.0f}/{s['fake_running']}"
            for s in r["samples"][::4]
            if "limit" in s
        ),
        f"  left hanging: {r['hanging']} ({'none' if r['all_answered'] else 'SOME'}); client "
        f"lag p99 {r['client_lag_p99_ms']} ms; machine {r['busy']:.0%} busy, "
        f"{r['foreign_busy']:.0%} by other processes" + ("  (DISTURBED)" if r["disturbed"] else ""),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of overload")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds at half capacity first")
    ap.add_argument("--load", type=float, default=3.0, help="offered load / capacity")
    ap.add_argument("--mix", default=MIX, help=f"tier shares (default {MIX})")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per request")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--admission",
        default="",
        help="the gateway's `admission:` settings, a YAML mapping such as "
        "'{tolerance: 1.5, queue_size: null}' (default: the gateway's defaults)",
    )
    ap.add_argument(
        "--reserve",
        default="",
        help="reserved shares of capacity by tier, e.g. 'platinum=0.2' (default: the "
        "default tiers', platinum 0.4)",
    )
    ap.add_argument("--cpus", default="1", help="pin the load client ('' for none)")
    ap.add_argument(
        "--attempts", type=int, default=2, help="re-run (fresh servers) while disturbed"
    )
    args = ap.parse_args(argv)
    for attempt in range(1, args.attempts + 1):
        result = run(args)
        result["attempt"] = attempt
        if not result["disturbed"]:
            break
        log(
            f"disturbed: other processes used {result['foreign_busy']:.0%} of the machine "
            f"(attempt {attempt}/{args.attempts})"
        )
    if args.json:
        print(json_line(result))
    else:
        print(table(result))


if __name__ == "__main__":
    main()
