"""What a gateway's event deliveries cost the store, as DuckDB rows against Parquet
segments, and with their idempotency keys, in one run.

A gateway worker delivers every 5 s: at about 2,700 requests/s each, 13,500 request
events and their 40,500 check scores (three checks an answer). This builds such
deliveries with the gateway's own converters (`to_table`, `checks_table`, the Arrow IPC
body of the ingest API), reads them back as `slokit serve` does, and appends them to a
fresh store three times: with every append inserted into DuckDB's tables (`segment_rows`
above any delivery, the store's layout before segments took deliveries); with the
defaults (deliveries of 5,000 events or more become Parquet segments, merged once 32 of
a kind wait); and with the defaults and each delivery's idempotency key, as the gateway
sends them now (the store then skips probing its stored events for the delivery's ids;
the two workers' deliveries span the same 5 s, so without keys every one is probed).
Reported for each: the store's CPU (all threads) per delivery, the worst single append,
files on disk at the end, and the time of a count over the view; then the ratios.
`--deliveries` (40: 20 per worker, 100 s of traffic) and `--requests` per delivery
(13,500).

    .venv/bin/python bench/store_deliveries.py
    .venv/bin/python bench/store_deliveries.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from slokit.gateway.sink import arrow_stream, checks_table, to_table
from slokit.server.app import _arrow_stream
from slokit.store import DuckDBStore

CHECKS = [("empty", True), ("truncated", True), ("refusal", True)]
# (name, segment_rows, with idempotency keys)
VARIANTS = (
    ("duckdb_rows", 10**12, False),
    ("segments", None, False),
    ("segments_keyed", None, True),
)


def deliveries(n: int, requests: int) -> list[tuple[bytes, bytes]]:
    """`n` deliveries of two workers taking turns: (request body, score body)."""
    out = []
    t0 = time.time() - 3600
    for d in range(n):
        worker, ts0 = d % 2, t0 + 5.0 * (d // 2)
        recs, checks = [], []
        for i in range(requests):
            eid = f"gw-w{worker}-{d}-{i}"
            ts = ts0 + i * 5.0 / requests
            recs.append(
                {
                    "event_id": eid,
                    "ts": ts,
                    "service": "chat",
                    "route": "chat",
                    "model": "m1",
                    "tier": "gold",
                    "tenant": "acme",
                    "outcome": "ok",
                    "http_status": 200,
                    "latency_ms": 12.0 + i % 7,
                    "queue_ms": 0.01,
                    "input_tokens": 12,
                    "output_tokens": 16,
                    "cost_usd": 1.2e-5,
                    "attributes": {"stream": "false", "upstream": "u1", "finish_reason": "stop"},
                }
            )
            checks.append((eid, ts, "chat", CHECKS))
        out.append((arrow_stream(to_table(recs, "request")), arrow_stream(checks_table(checks))))
    return out


def run_one(
    db: Path, bodies: list[tuple[bytes, bytes]], segment_rows: int | None, keyed: bool
) -> dict[str, Any]:
    kw = {} if segment_rows is None else {"segment_rows": segment_rows}
    cpu, worst = 0.0, 0.0
    with DuckDBStore(db, **kw) as store:
        for d, (body_r, body_s) in enumerate(bodies):
            c = time.process_time()
            for kind, body in (("request", body_r), ("score", body_s)):
                a = time.process_time()
                key = f"gw-w{d % 2}-{d}" if keyed else None
                store.append(kind, _arrow_stream(body, kind).table, key)
                worst = max(worst, time.process_time() - a)
            cpu += time.process_time() - c
        t = time.perf_counter()
        rows = store.count("request") + store.count("score")
        count_s = time.perf_counter() - t
    files = sum(1 for _ in db.parent.rglob("*.parquet")) if db.parent.exists() else 0
    return {
        "cpu_ms_per_delivery": round(1000 * cpu / len(bodies), 1),
        "worst_append_ms": round(1000 * worst, 1),
        "rows": rows,
        "parquet_files": files,
        "count_ms": round(1000 * count_s, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deliveries", type=int, default=40)
    ap.add_argument("--requests", type=int, default=13_500, help="requests per delivery")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bodies = deliveries(args.deliveries, args.requests)
    result: dict[str, Any] = {"deliveries": args.deliveries, "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows, keyed in VARIANTS:
            (Path(tmp) / name).mkdir()
            result[name] = run_one(Path(tmp) / name / "store.duckdb", bodies, rows, keyed)
            print(f"{name}: {result[name]}", file=sys.stderr)
    a, b, c = (result[name] for name, _, _ in VARIANTS)
    assert a["rows"] == b["rows"] == c["rows"] == args.deliveries * args.requests * 4
    result["cpu_ratio"] = round(a["cpu_ms_per_delivery"] / b["cpu_ms_per_delivery"], 2)
    result["keyed_ratio"] = round(b["cpu_ms_per_delivery"] / c["cpu_ms_per_delivery"], 2)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.deliveries} deliveries of {args.requests:,} requests + their check scores")
    print(f"{'':14} {'CPU/delivery':>11} {'worst append':>13} {'files':>6} {'count':>8}")
    for name, _, _ in VARIANTS:
        r = result[name]
        print(
            f"{name:14} {r['cpu_ms_per_delivery']:>8.1f} ms {r['worst_append_ms']:>10.1f} ms "
            f"{r['parquet_files']:>6} {r['count_ms']:>5.1f} ms"
        )
    print(f"DuckDB rows cost {result['cpu_ratio']}x the CPU of segments")
    print(f"segments without keys cost {result['keyed_ratio']}x the CPU of keyed ones")


if __name__ == "__main__":
    main()
