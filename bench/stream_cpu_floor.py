"""How much TTFT a relay adds to short streams on this machine, as a function of the CPU
it uses: the evidence behind the gateway's missed short-stream target (docs/gateway.md,
Known limits).

The short-stream load of bench/gateway_latency.py (b) (200 concurrent streams, fake TTFT
50 ms, ITL uniform in 10..30 ms, 16 tokens: about 540 new streams/s and 10,000 SSE
pieces/s) is sent, in one run, to fake-llm directly; through bench/l4_relay.py, a bare TCP
relay (uvloop, a read and a write per piece, nothing parsed) that burns `--burn` us of CPU
on each piece from the upstream (default 0, 15, 30, 50); and through `slokit gateway`
(default config: every event recorded, admission on). For each: the cores the relay or
gateway used, TTFT p50/p99, and what it adds over direct. Runs alternate over `--rounds`
(default 2) and each figure is the median of its rounds.

The machine has 2 cores; the TTFT client (pinned to core 1; bench/stream_client.py) takes
about 0.2 of them and fake-llm about 0.35, so whatever relays the streams competes with
both for the rest. `--client aiohttp` runs the previous client (0.6 cores), with which
every relay above about a third of a core missed the target. The
relay rows draw the curve: what a relay's CPU alone costs in added TTFT, with nothing else
different. The gateway row says where the gateway sits on it.

    .venv/bin/python bench/stream_cpu_floor.py            # readable table
    .venv/bin/python bench/stream_cpu_floor.py --json     # one JSON line on stdout
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway_latency import (  # noqa: E402
    TTFT_P50_TARGET_MS,
    TTFT_P99_TARGET_MS,
    fake_llm,
    free_port,
    gateway,
    json_line,
    log,
    measured,
    median,
    r2,
    server,
    ttft_streams,
)

FAKE_ARGS = ["--ttft-ms", "50", "--itl-ms", "uniform:10:30", "--output-tokens", "16"]
FAKE_ARGS += ["--capacity", "800"]


def _run(url: str, label: str, args: argparse.Namespace, warmup: float) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        return ttft_streams(
            url,
            streams=args.streams,
            duration=args.duration,
            warmup=warmup,
            tokens=16,
            cpus={1},
            client=args.client,
        )

    res, info = measured(label, go)
    cores = info["cores"]
    row = {
        "ttft_p50_ms": res["ttft_p50_ms"],
        "ttft_p99_ms": res["ttft_p99_ms"],
        "streams_per_s": res["streams_per_s"],
        "ok": res["ok"],
        "disturbed": info["disturbed"],
        # the relay, or the gateway's worker process (its parent holds the store)
        "cores": cores.get("relay", cores.get("gateway worker")),
        "all_cores": cores,
    }
    log(
        f"  {label:18} TTFT p50 {row['ttft_p50_ms']:.2f} p99 {row['ttft_p99_ms']:.2f} ms, "
        f"{row['streams_per_s']}/s, cores {cores}"
    )
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = ["direct", *(f"relay, burn {b:g} us" for b in args.burn), "gateway"]
    rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="slokit-floor-") as tmpd:
        tmp = Path(tmpd)
        with fake_llm(tmp, *FAKE_ARGS) as up, gateway(tmp, up) as gw:
            host, port = up.split("//")[1].split(":")
            for i in range(args.rounds):
                log(f"round {i + 1}/{args.rounds}")
                rounds["direct"].append(_run(up, "direct", args, 2.0))
                for burn in args.burn:
                    name = f"relay, burn {burn:g} us"
                    listen = free_port()
                    cmd = [sys.executable, str(HERE / "l4_relay.py"), host, port, str(listen)]
                    cmd += ["--burn-us", str(burn)]
                    relay_url = f"http://127.0.0.1:{listen}"
                    with server(cmd, f"{relay_url}/health", tmp / f"relay-{burn}.log"):
                        rounds[name].append(_run(relay_url, name, args, 2.0))
                # the gateway's first run lets its concurrency limit learn the upstream
                warm = args.gateway_warmup if i == 0 else 2.0
                rounds["gateway"].append(_run(gw["url"], "gateway", args, warm))
    keys = ("ttft_p50_ms", "ttft_p99_ms", "cores", "streams_per_s")
    rows = {n: {k: r2(median([r[k] or 0.0 for r in rs])) for k in keys} for n, rs in rounds.items()}
    d = rows["direct"]
    for n, row in rows.items():
        if n != "direct":
            row["added_ttft_p50_ms"] = r2(row["ttft_p50_ms"] - d["ttft_p50_ms"])
            row["added_ttft_p99_ms"] = r2(row["ttft_p99_ms"] - d["ttft_p99_ms"])
            row["meets_targets"] = (
                row["added_ttft_p50_ms"] <= TTFT_P50_TARGET_MS
                and row["added_ttft_p99_ms"] <= TTFT_P99_TARGET_MS
            )
    return {
        "streams": args.streams,
        "client": args.client,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "target_added_ttft_p50_ms": TTFT_P50_TARGET_MS,
        "target_added_ttft_p99_ms": TTFT_P99_TARGET_MS,
        "rows": rows,
        "all_ok": all(r["ok"] for rs in rounds.values() for r in rs),
        "disturbed": any(r["disturbed"] for rs in rounds.values() for r in rs),
        "runs": rounds,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['streams']} concurrent short streams ({result['client']} client), "
        f"{result['duration_s']:.0f} s x "
        f"{result['rounds']} rounds (medians); targets: added TTFT p50 <= "
        f"{result['target_added_ttft_p50_ms']:g} ms, p99 <= "
        f"{result['target_added_ttft_p99_ms']:g} ms",
        f"  {'':22} {'cores':>6} {'TTFT p50':>9} {'TTFT p99':>9} {'added p50':>10} "
        f"{'added p99':>10}  met",
    ]
    for name, r in result["rows"].items():
        cores = "" if name == "direct" else f"{r['cores']:.2f}"
        line = f"  {name:22} {cores:>6} {r['ttft_p50_ms']:9.2f} {r['ttft_p99_ms']:9.2f}"
        if name != "direct":
            line += f" {r['added_ttft_p50_ms']:10.2f} {r['added_ttft_p99_ms']:10.2f}  "
            line += "yes" if r["meets_targets"] else "no"
        lines.append(line)
    lines.append(f"all streams 200 with content: {result['all_ok']}")
    if result["disturbed"]:
        lines.append("NOTE: some run was disturbed by other processes (foreign_busy > 8%)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="the TTFT client: lean (bench/stream_client.py, about 0.2 cores) or aiohttp "
        "(the previous client, about 0.6 cores)",
    )
    ap.add_argument(
        "--burn",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 15.0, 30.0, 50.0],
        help="relay CPU per upstream piece, us, comma-separated (default 0,15,30,50)",
    )
    ap.add_argument(
        "--gateway-warmup",
        type=float,
        default=20.0,
        help="seconds of load before the gateway's first run is measured",
    )
    args = ap.parse_args()
    result = run(args)
    print(json_line(result) if args.json else table(result))


if __name__ == "__main__":
    main()
