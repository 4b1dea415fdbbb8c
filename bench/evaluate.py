"""Evaluation of the demo spec (12 SLOs, some grouped by tier and route) over 30 days
of about 50M events: the first evaluation in a fresh process, a re-evaluation after
one more minute of traffic is ingested, and the process's peak memory. Baseline in
the same run: the same statuses computed from the raw events, without rollups.

Targets (issue 2): first <= 3 s, re-evaluation <= 200 ms, peak memory <= 2 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.demo.run import demo_spec_text
from slokit.engine import Evaluator
from slokit.spec import loads
from slokit.store import DuckDBStore, for_slo

from common import DATA, END, demo_requests, peak_rss_mb, timer

HERE = Path(__file__).resolve().parent


def build(path: Path, events: int) -> int:
    """The store, filled once and kept in bench/.data for later runs."""
    if path.exists():
        with DuckDBStore(path, read_only=True) as store:
            return store.count()
    spec = loads(demo_spec_text())
    with DuckDBStore(path) as store:
        store.register(for_slo(s) for s in spec.slos if s.sli.kind != "composite")
        rate = events / (30 * 1440)
        for table in demo_requests(events, rate=rate):
            store.append("request", table)
        return store.count()


def one_more_minute(store: DuckDBStore) -> pa.Table:
    """The last stored minute of traffic again, one minute later, with ids new to the
    store (the store is kept for later runs: ids of an earlier run's minute would be
    recognised as repeats and nothing stored)."""
    last = store.query(
        "SELECT * EXCLUDE (_seq) FROM request_events WHERE ts >= $a AND ts < $b",
        {"a": END - timedelta(minutes=1), "b": END},
    )
    ts = pc.add(last.column("ts"), pa.scalar(timedelta(minutes=1), pa.duration("us")))
    ids = pc.binary_join_element_wise(last.column("event_id"), f"+1m-{time.time_ns()}", "")
    return last.set_column(1, "ts", ts).set_column(0, "event_id", ids)


def measure(path: Path, raw: bool) -> dict[str, float]:
    spec = loads(demo_spec_text())
    result: dict[str, float] = {}
    with DuckDBStore(path) as store:
        if raw:  # a copy of the spec's definitions that no rollup serves
            evaluator = Evaluator(spec, store, register=False)
            for name, d in list(evaluator.defs.items()):
                evaluator.defs[name] = dataclasses.replace(d, where=d.where + " AND TRUE")
        else:
            evaluator = Evaluator(spec, store)
        with timer() as t:
            statuses = evaluator.evaluate(END)
        result["first_s"] = t[0]
        result["statuses"] = len(statuses)
        if not raw:
            extra = one_more_minute(store)
            stored = store.append("request", extra).inserted
            assert stored == extra.num_rows, (stored, extra.num_rows)
            times = []
            for _ in range(3):  # the first reads the new minute; the others find nothing new
                with timer() as t:
                    evaluator.evaluate(END + timedelta(minutes=1))
                times.append(t[0])
            result["re_evaluation_s"] = times[0]
            result["re_evaluation_idle_s"] = float(np.median(times[1:]))
            result["minute_events"] = extra.num_rows
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000_000)
    ap.add_argument("--measure", choices=["rollup", "raw"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    path = DATA / f"eval-{args.events}.duckdb"
    if args.measure:
        print(json.dumps(measure(path, raw=args.measure == "raw")))
        return
    DATA.mkdir(exist_ok=True)
    with timer() as t:
        stored = build(path, args.events)
    runs = {}
    for mode in ("rollup", "raw"):  # each in a fresh process: cold caches, own peak RSS
        out = subprocess.run(
            [sys.executable, __file__, "--events", str(args.events), "--measure", mode],
            check=True,
            capture_output=True,
            text=True,
        )
        runs[mode] = json.loads(out.stdout)
    row = {
        "events": stored,
        "slos": 12,
        "statuses": runs["rollup"]["statuses"],
        "first_evaluation_s": round(runs["rollup"]["first_s"], 3),
        "re_evaluation_after_1_minute_s": round(runs["rollup"]["re_evaluation_s"], 3),
        "re_evaluation_no_new_data_s": round(runs["rollup"]["re_evaluation_idle_s"], 3),
        "minute_events": runs["rollup"]["minute_events"],
        "peak_rss_mb": round(runs["rollup"]["peak_rss_mb"]),
        "raw_scan_first_evaluation_s": round(runs["raw"]["first_s"], 3),
        "speedup_vs_raw_scan": round(runs["raw"]["first_s"] / runs["rollup"]["first_s"], 1),
        "build_s": round(t[0], 1),
    }
    print(
        json.dumps(row, indent=2) if args.json else "\n".join(f"{k:34} {v}" for k, v in row.items())
    )


if __name__ == "__main__":
    main()
