"""HTTP ingest: `slokit serve` in one process, a client posting NDJSON batches of
1,000 events from another (bench/http_client.py). Baseline in the same run: the same
events through `DuckDBStore.append` in-process, one 1,000-event batch at a time
(what the server's writer does, without HTTP, parsing and validation).

Target (issue 2): >= 50k events/s.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from slokit.demo.run import demo_spec_text
from slokit.store import DuckDBStore

from common import DATA, demo_requests, fresh, timer

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_load(batches: int, concurrency: int, spec: Path | None) -> dict[str, float]:
    db = fresh(DATA / "bench-http.duckdb")
    port = free_port()
    cmd = [sys.executable, "-m", "slokit.cli", "serve", "--db", str(db), "--port", str(port)]
    if spec is not None:
        cmd += ["--spec", str(spec)]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        out = subprocess.run(
            [
                sys.executable,
                str(HERE / "http_client.py"),
                "--url",
                url,
                "--batches",
                str(batches),
                "--concurrency",
                str(concurrency),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=HERE,
        )
        return dict(json.loads(out.stdout))
    finally:
        server.terminate()
        server.wait(timeout=30)


def in_process_appends(batches: int) -> float:
    db = fresh(DATA / "bench-http-baseline.duckdb")
    tables = []
    for t in demo_requests(batches * 1000):
        tables += [t.slice(i, 1000) for i in range(0, t.num_rows - 999, 1000)]
    tables = tables[:batches]
    with DuckDBStore(db) as store, timer() as t:
        for table in tables:
            store.append("request", table)
    return batches * 1000 / t[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    spec = DATA / "demo-spec.yaml"
    spec.write_text(demo_spec_text())
    plain = serve_and_load(args.batches, args.concurrency, None)
    rolled = serve_and_load(args.batches, args.concurrency, spec)
    base = in_process_appends(args.batches)
    row = {
        "batches": args.batches,
        "batch_events": 1000,
        "concurrency": args.concurrency,
        "http_events_per_s": round(plain["events_per_s"]),
        "http_with_12_rollups_per_s": round(rolled["events_per_s"]),
        "in_process_append_per_s": round(base),
        "ratio_to_in_process": round(plain["events_per_s"] / base, 2),
        "failures": plain["failures"] + rolled["failures"],
        "target_per_s": 50_000,
    }
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        for k, v in row.items():
            print(f"{k:28} {v:>12,}" if isinstance(v, int) else f"{k:28} {v:>12}")


if __name__ == "__main__":
    main()
