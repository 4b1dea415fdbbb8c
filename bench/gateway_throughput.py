"""Non-streaming throughput with wrk, in one run: the fake LLM directly, `slokit gateway` with
one worker, with two (`--workers 2`), and LiteLLM's proxy (one worker, as it starts by
default) in front of the same fake.

The gateway runs with its defaults: every event recorded (into a fresh DuckDB file, through
the local `slokit serve` the CLI starts on `--serve-port`; with two workers they POST their
events to it), admission control on. A reference run of two workers with
`events: {enabled: false}` (nothing recorded; checked: no rows) shows what recording costs.
Reported: requests/s of each, the ratios gateway/direct
and gateway/LiteLLM (goal >= 30x), whether every response was 2xx (wrk's per-status
counts), and that the events reached the store: after each gateway run the store's
`slokit_store_events{kind="request"}` (GET /metrics of the local `slokit serve`) is polled
until it stops moving, then the processes are stopped and the rows of `request_events` in
the DuckDB file are counted by outcome, against the requests wrk had answered and those the
fake received (its /fake/stats). Targets: >= 3,500 requests/s with one worker, >= 6,000
with two.

The fake runs with `--ttft-ms 0 --itl-ms 0 --output-tokens 16`. wrk: `--connections` (50)
over one thread, a 2 s warm-up (5 s for LiteLLM, whose first requests take seconds), then
`--rounds` (2) runs of `--duration` s (10) on the same servers, the median run reported
(the lower one of an even number; LiteLLM: one run of `--litellm-duration` s). Each run
waits for an idle machine first and is re-run (up to 3 times) when other processes used
more than 8% of the machine during it; the CPU each process used (cores) is recorded with
every run. wrk is not pinned by default (`--cpus`): it takes about 0.1 core here, and
pinning it to either core moved the gateway's figure by less than the run-to-run spread.
The gateway's workers are pinned as docs/gateway.md advises (`--gateway-cpus auto`:
`slokit gateway --cpus auto`, one CPU a worker from core 0): in A/B runs alternating with floating
workers that gained 0.7% (medians of 3 and 4 rounds, one worker and two): within the
noise, but higher in 3 of 3 pairs of rounds for one worker and 6 of 7 for two.

    .venv/bin/python bench/gateway_throughput.py
    .venv/bin/python bench/gateway_throughput.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_latency import (
    fake_llm,
    gateway,
    http_get,
    json_line,
    log,
    measured,
    metric,
    parse_cpus,
    r2,
)
from litellm_proxy import start_litellm
from wrk_load import WrkResult, chat_body, cpu_busy, run_wrk

RPS_1W_TARGET, RPS_2W_TARGET, LITELLM_RATIO_GOAL = 3_500, 6_000, 30.0


def fake_chats(url: str) -> int:
    """Chat completions the fake received (its health-check GETs of /v1/models left out)."""
    status, body = http_get(f"{url}/fake/stats")
    assert status == 200, body
    return int(json.loads(body)["paths"].get("/v1/chat/completions", 0))


def stored_events(
    serve_url: str, expect: int, timeout: float = 30.0, quiet_s: float = 7.0
) -> tuple[int, float]:
    """The store's request count (its /metrics), polled until it reaches `expect` or has not
    moved for `quiet_s` (longer than the gateway's 5 s between deliveries); returns (count,
    seconds waited)."""
    t0 = time.monotonic()
    last, since = -1, time.monotonic()
    while True:
        _, body = http_get(f"{serve_url}/metrics", timeout=10)
        n = int(metric(body.decode(), "slokit_store_events", {"kind": "request"}))
        now = time.monotonic()
        if n != last:
            last, since = n, now
        if n >= expect or now - since >= quiet_s or now - t0 >= timeout:
            return n, round(now - t0, 2)
        time.sleep(0.25)


def rows_by_outcome(db: Path) -> tuple[dict[str, int], int]:
    """Rows of `request_events` by outcome, and the number of `score_events` rows (the
    quality checks' ScoreEvents), read from the DuckDB file once its owner has stopped."""
    from slokit.store import DuckDBStore

    with DuckDBStore(db, read_only=True) as store:
        rows = store.query(
            "SELECT outcome, count(*) AS n FROM request_events GROUP BY outcome ORDER BY 1"
        ).to_pylist()
        scores = store.count("score")
    return {str(r["outcome"]): int(r["n"]) for r in rows}, int(scores)


def wrk_row(r: WrkResult) -> dict[str, Any]:
    return {
        "rps": round(r.rps, 1),
        "requests": r.requests,
        "duration_s": round(r.duration_s, 2),
        "latency_p50_ms": r2(r.latency.p50),
        "latency_p99_ms": r2(r.latency.p99),
        "errors": {k: v for k, v in r.errors.items() if v},
        "non_2xx": r.non_2xx,
        "statuses": {str(k): v for k, v in (r.status_counts or {}).items()},
        "all_2xx": r.ok,
    }


def bench_one(
    label: str,
    url: str,
    args: argparse.Namespace,
    duration: float,
    headers: Any = None,
    warmup: float = 2.0,
    rounds: int = 1,
) -> tuple[dict[str, Any], int]:
    """A warm-up, then `rounds` measured wrk runs; returns (the row of the median run, with
    every run's rps, and the requests wrk counted in all runs)."""
    body = chat_body(max_tokens=16)
    cpus = parse_cpus(args.cpus)

    def go(d: float) -> WrkResult:
        return run_wrk(
            url, body, headers=headers, duration=d, connections=args.connections, cpus=cpus
        )

    counted: list[int] = []  # every run's requests, disturbed ones that were re-run too

    def measure() -> WrkResult:
        r = go(duration)
        counted.append(r.requests)
        return r

    warm = go(warmup)
    warm_ok = warm.non_2xx == 0 and not any(warm.errors.values())
    runs: list[tuple[WrkResult, dict[str, Any]]] = []
    for i in range(rounds):
        res, info = measured(label, measure)
        runs.append((res, info))
        log(
            f"  {label:12} {i + 1}/{rounds} {res.short()}  [cpu {info['busy']:.0%} busy, "
            f"{info['foreign_busy']:.0%} others; cores {info['cores']}]"
        )
    # the figures of the median run (by rps); every run must be all 2xx
    runs_sorted = sorted(runs, key=lambda x: x[0].rps)
    res, info = runs_sorted[(len(runs_sorted) - 1) // 2]
    answered = warm.requests + sum(counted)
    row = {**wrk_row(res), **info, "warmup_all_2xx": warm_ok}
    row["rounds_rps"] = [round(r.rps, 1) for r, _ in runs]
    row["all_2xx"] = all(r.ok for r, _ in runs)
    row["disturbed"] = any(i["disturbed"] for _, i in runs)
    row["foreign_busy"] = max(i["foreign_busy"] for _, i in runs)
    row["warmup"] = {
        "requests": warm.requests,
        "non_2xx": warm.non_2xx,
        "errors": {k: v for k, v in warm.errors.items() if v},
        "statuses": {str(k): v for k, v in (warm.status_counts or {}).items()},
    }
    if not warm_ok:
        log(f"  {label:12} warm-up run not all 2xx: {warm.short()}")
    return row, answered


def bench_gateway(
    tmp: Path, fake: str, workers: int, args: argparse.Namespace, events: bool = True
) -> dict[str, Any]:
    name = f"gw{workers}" + ("" if events else "-noevents")
    config = None
    if not events:
        config = tmp / f"{name}.yaml"
        config.write_text("apiVersion: slokit/v1\nkind: gateway\nevents: {enabled: false}\n")
    label = f"gateway x{workers}" + ("" if events else " no events")
    cpus = "auto" if args.gateway_cpus == "auto" else ""
    with gateway(tmp, fake, workers=workers, name=name, config=config, cpus=cpus) as gw:
        before = fake_chats(fake)
        row, answered_counted = bench_one(label, gw["url"], args, args.duration, rounds=args.rounds)
        upstream = fake_chats(fake) - before
        stored, waited = stored_events(gw["serve_url"], upstream if events else 0)
        _, metrics_text = http_get(f"{gw['url']}/metrics", timeout=10)
        text = metrics_text.decode()
        row["one_worker_metrics"] = {
            "events_delivered": metric(text, "slokit_gateway_events_delivered_total"),
            "events_dropped": metric(text, "slokit_gateway_events_dropped_total"),
            "shed": metric(text, "slokit_gateway_shed_total"),
        }
    # the processes are stopped: the DuckDB file can be opened
    by_outcome, scores = rows_by_outcome(gw["db"])
    rows = sum(by_outcome.values())
    row["events"] = {
        "upstream_requests": upstream,
        "wrk_answered_min": answered_counted,
        "stored_metric": stored,
        "stored_wait_s": waited,
        "duckdb_rows": rows,
        "duckdb_by_outcome": by_outcome,
        "duckdb_score_rows": scores,
        # every request the fake answered has its event (ok, or cancelled when wrk went
        # away at the end of a run), and every 200 wrk counted is an `ok` event
        "lost": max(0, upstream - rows),
        "all_stored": rows >= upstream
        and stored >= upstream
        and by_outcome.get("ok", 0) >= answered_counted,
    }
    if not events:  # the reference run: nothing may have been recorded
        row["events"]["all_stored"] = rows == 0 and scores == 0
    log(
        f"  {'':12} events: upstream got {upstream}, wrk counted >= {answered_counted}, "
        f"store /metrics {stored} (after {waited}s), DuckDB rows {rows} {by_outcome}"
    )
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "gateway_throughput",
        "connections": args.connections,
        "duration_s": args.duration,
        "load_cpus": args.cpus,
        "gateway_cpus": args.gateway_cpus,
        "busy_at_start": round(cpu_busy(1.0), 2),
    }
    with tempfile.TemporaryDirectory(prefix="gw-throughput-") as t:
        tmp = Path(t)
        fake_args = ["--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16"]
        with fake_llm(tmp, *fake_args) as fake:
            log("wrk, non-streaming:")
            result["direct"], _ = bench_one("direct", fake, args, args.duration, rounds=args.rounds)
            result["gateway_1w"] = bench_gateway(tmp, fake, 1, args)
            result["gateway_2w"] = bench_gateway(tmp, fake, 2, args)
            if not args.no_reference:
                result["gateway_2w_no_events"] = bench_gateway(tmp, fake, 2, args, events=False)
            if not args.no_litellm:
                log("  starting LiteLLM's proxy (~15 s)")
                with start_litellm(f"{fake}/v1", log_path=tmp / "litellm.log") as (_, url, key):
                    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
                    # its first requests take seconds (imports, first routing): a longer warm-up
                    result["litellm"], _ = bench_one(
                        "litellm", url, args, args.litellm_duration, headers, warmup=5.0
                    )
    d, g1, g2 = result["direct"], result["gateway_1w"], result["gateway_2w"]
    lite = result.get("litellm")
    result["gateway_1w_over_direct"] = round(g1["rps"] / d["rps"], 3)
    result["gateway_2w_over_direct"] = round(g2["rps"] / d["rps"], 3)
    if lite and lite["rps"]:
        result["gateway_1w_over_litellm"] = round(g1["rps"] / lite["rps"], 1)
        result["gateway_2w_over_litellm"] = round(g2["rps"] / lite["rps"], 1)
    result["targets"] = {
        "rps_1w": RPS_1W_TARGET,
        "rps_2w": RPS_2W_TARGET,
        "over_litellm": LITELLM_RATIO_GOAL,
        "met_1w": g1["rps"] >= RPS_1W_TARGET,
        "met_2w": g2["rps"] >= RPS_2W_TARGET,
        "met_litellm": bool(lite) and result["gateway_1w_over_litellm"] >= LITELLM_RATIO_GOAL,
    }
    runs = [d, g1, g2] + ([lite] if lite else [])
    result["all_2xx"] = all(r["all_2xx"] and r["warmup_all_2xx"] for r in runs)
    result["rounds"] = args.rounds
    result["all_events_stored"] = g1["events"]["all_stored"] and g2["events"]["all_stored"]
    result["disturbed"] = any(r["disturbed"] for r in runs)
    if "gateway_2w_no_events" in result:
        ref = result["gateway_2w_no_events"]
        result["all_2xx"] = result["all_2xx"] and ref["all_2xx"]
        result["recording_cost_2w"] = round(1 - g2["rps"] / ref["rps"], 3)
    return result


def table(r: dict[str, Any]) -> str:
    lines = [
        f"wrk, non-streaming, {r['connections']} connections, 1 thread, {r['duration_s']:.0f} s"
        f" (load pinned to cpus {r['load_cpus'] or 'none'})",
        f"  {'':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>8}"
        f" {'others busy':>11}  req/s of each run (the median run is shown)",
    ]
    names = [("direct", "fake directly"), ("gateway_1w", "gateway, 1 wkr")]
    names += [("gateway_2w", "gateway, 2 wkrs"), ("gateway_2w_no_events", "2 wkrs, no events")]
    names += [("litellm", "LiteLLM, 1 wkr")]
    for key, label in names:
        x = r.get(key)
        if not x:
            continue
        errs = sum(x["errors"].values())
        lines.append(
            f"  {label:16} {x['rps']:9,.0f} {x['latency_p50_ms']:8.2f} {x['latency_p99_ms']:8.2f}"
            f" {x['non_2xx']:8} {errs:8} {x['foreign_busy']:10.0%}  "
            + ", ".join(f"{v:,.0f}" for v in x["rounds_rps"])
        )
    for key, label in names:
        if r.get(key):
            cores = ", ".join(f"{k} {v:.2f}" for k, v in r[key]["cores"].items())
            lines.append(f"  CPU cores used, {label}: {cores}")
    t = r["targets"]
    lines.append(
        f"  gateway/direct: 1 wkr {r['gateway_1w_over_direct']:.2f}, 2 wkrs "
        f"{r['gateway_2w_over_direct']:.2f}"
    )
    if "gateway_1w_over_litellm" in r:
        lines.append(
            f"  gateway/LiteLLM: 1 wkr {r['gateway_1w_over_litellm']:.1f}x, 2 wkrs "
            f"{r['gateway_2w_over_litellm']:.1f}x (goal >= {t['over_litellm']:.0f}x: "
            f"{'met' if t['met_litellm'] else 'NOT met'})"
        )
    lines.append(
        f"  targets: 1 wkr >= {t['rps_1w']:,} ({'met' if t['met_1w'] else 'NOT met'}), "
        f"2 wkrs >= {t['rps_2w']:,} ({'met' if t['met_2w'] else 'NOT met'}); "
        f"all 2xx: {r['all_2xx']}"
    )
    if r.get("gateway_2w_no_events"):
        x = r["gateway_2w_no_events"]
        lines.append(
            f"  reference: 2 wkrs recording nothing (events.enabled: false) {x['rps']:,.0f}/s, "
            f"so recording every event costs {1 - r['gateway_2w']['rps'] / x['rps']:.0%} of "
            f"the 2-worker throughput; rows stored in that run: "
            f"{x['events']['duckdb_rows'] + x['events']['duckdb_score_rows']}"
        )
    for key in ("gateway_1w", "gateway_2w"):
        e = r[key]["events"]
        lines.append(
            f"  events, {key}: upstream requests {e['upstream_requests']:,}, wrk counted >= "
            f"{e['wrk_answered_min']:,}, stored (store /metrics) {e['stored_metric']:,}, "
            f"DuckDB rows {e['duckdb_rows']:,} {e['duckdb_by_outcome']} (+ "
            f"{e['duckdb_score_rows']:,} score events): "
            f"{'all stored' if e['all_stored'] else 'EVENTS LOST'}"
        )
    if r["disturbed"]:
        lines.append("  NOTE: some run was disturbed by other processes (see foreign_busy)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="wrk runs per target (median)")
    ap.add_argument("--litellm-duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--cpus", default="", help="pin wrk, e.g. 1 (default: not pinned)")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    ap.add_argument(
        "--gateway-cpus",
        choices=("auto", "none"),
        default="auto",
        help="auto: `slokit gateway --cpus auto` (one CPU a worker from core 0); none: floating",
    )
    ap.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference run of 2 workers that record no events",
    )
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        print(json_line(result))
    else:
        print(table(result))


if __name__ == "__main__":
    main()
