"""Bulk ingest from Parquet and JSONL: `slokit.ingest_file` (read, validate, dedupe,
store, rollups) against DuckDB loading the same file with no checks at all
(`INSERT INTO ... SELECT * FROM read_parquet/read_json`), in the same run.

Targets (issue 2): Parquet >= 1M events/s, JSONL >= 200k events/s.
"""

from __future__ import annotations

import argparse
import json

import duckdb

from slokit.demo.run import demo_spec_text
from slokit.ingest import ingest_file
from slokit.spec import loads
from slokit.store import DuckDBStore, for_slo

from common import DATA, fresh, jsonl_file, parquet_file, timer


def slokit_ingest(path: str, with_rollups: bool) -> float:
    db = fresh(DATA / "bench-ingest.duckdb")
    with DuckDBStore(db) as store:
        if with_rollups:
            spec = loads(demo_spec_text())
            store.register(for_slo(s) for s in spec.slos if s.sli.kind != "composite")
        with timer() as t:
            report = ingest_file(store, path)
    assert report.rejected == 0
    return report.accepted / t[0]


def duckdb_baseline(path: str, reader: str, n: int) -> float:
    db = fresh(DATA / "bench-baseline.duckdb")
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}('{path}') LIMIT 0")
    with timer() as t:
        con.execute(f"INSERT INTO t SELECT * FROM {reader}('{path}')")
    con.close()
    return n / t[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.events
    rows = []
    for fmt, path, reader, target in (
        ("parquet", parquet_file(n), "read_parquet", 1_000_000),
        ("jsonl", jsonl_file(n), "read_json", 200_000),
    ):
        base = duckdb_baseline(str(path), reader, n)
        plain = slokit_ingest(str(path), with_rollups=False)
        rolled = slokit_ingest(str(path), with_rollups=True)
        rows.append(
            {
                "format": fmt,
                "events": n,
                "slokit_per_s": round(plain),
                "slokit_with_12_rollups_per_s": round(rolled),
                "duckdb_raw_load_per_s": round(base),
                "ratio_to_duckdb": round(plain / base, 2),
                "target_per_s": target,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'format':8} {'events':>10} {'slokit/s':>12} {'+rollups/s':>12} "
        f"{'duckdb raw/s':>13} {'ratio':>6} {'target/s':>10}"
    )
    for r in rows:
        print(
            f"{r['format']:8} {r['events']:>10,} {r['slokit_per_s']:>12,} "
            f"{r['slokit_with_12_rollups_per_s']:>12,} {r['duckdb_raw_load_per_s']:>13,} "
            f"{r['ratio_to_duckdb']:>6} {r['target_per_s']:>10,}"
        )


if __name__ == "__main__":
    main()
