"""The load side of bench/ingest_http.py, run as its own process: POST pre-built
NDJSON bodies of 1,000 events to /v1/events from several threads, report events/s."""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx
import orjson

from common import demo_requests


def bodies(batches: int, size: int) -> list[bytes]:
    out: list[bytes] = []
    for table in demo_requests(batches * size):
        rows = table.to_pylist()
        for i in range(0, len(rows) - size + 1, size):
            chunk = rows[i : i + size]
            for r in chunk:
                r["ts"] = r["ts"].isoformat()
                r["attributes"] = dict(r["attributes"]) if r["attributes"] else None
            out.append(b"\n".join(orjson.dumps(r) for r in chunk))
            if len(out) == batches:
                return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    work = bodies(args.batches, args.size)
    lock = threading.Lock()
    accepted = [0]
    failures = [0]

    def worker(items: list[bytes]) -> None:
        with httpx.Client(base_url=args.url, timeout=60) as client:
            for body in items:
                r = client.post(
                    "/v1/events", content=body, headers={"content-type": "application/x-ndjson"}
                )
                with lock:
                    if r.status_code == 200:
                        accepted[0] += r.json()["accepted"]
                    else:
                        failures[0] += 1

    threads = [
        threading.Thread(target=worker, args=(work[i :: args.concurrency],))
        for i in range(args.concurrency)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "events": accepted[0],
                "seconds": elapsed,
                "failures": failures[0],
                "events_per_s": accepted[0] / elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()
