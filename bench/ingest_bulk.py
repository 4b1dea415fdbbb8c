"""Bulk ingest from Parquet and JSONL: `slokit.ingest_file` (read, validate, dedupe,
store, rollups) against DuckDB loading the same file with no checks at all
(`INSERT INTO ... SELECT * FROM read_parquet/read_json`), in the same run.

For Parquet it also measures what inserting into a DuckDB table would cost at best:
the already read and validated Arrow table into an unchecked table of the store's
layout, nothing else timed. slokit stores big appends as Parquet segments instead
(slokit/store/segments.py), which is why it can beat that floor. Each slokit figure
is the median of `--rounds` runs (3).

Targets (issue 2): Parquet >= 1M events/s, JSONL >= 200k events/s.
"""

from __future__ import annotations

import argparse
import json
import statistics

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from slokit.demo.run import demo_spec_text
from slokit.events.validate import validate
from slokit.ingest import ingest_file
from slokit.spec import loads
from slokit.store import DuckDBStore, for_slo

from common import DATA, fresh, jsonl_file, parquet_file, timer


def slokit_ingest(path: str, with_rollups: bool, rounds: int = 1) -> float:
    """Events/s of `ingest_file` into a fresh store: the median of `rounds` runs."""
    return statistics.median(_slokit_ingest(path, with_rollups) for _ in range(rounds))


def _slokit_ingest(path: str, with_rollups: bool) -> float:
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


def arrow_insert_floor(path: str) -> float:
    table = validate(pq.read_table(path), "request").table
    table = pa.Table.from_batches(table.to_batches(max_chunksize=122_880))
    db = fresh(DATA / "bench-floor.duckdb")
    con = duckdb.connect(str(db))
    con.execute("SET preserve_insertion_order = false")
    con.register("validated", table)
    con.execute("CREATE TABLE t AS SELECT *, 0::BIGINT AS _seq FROM validated LIMIT 0")
    with timer() as t:
        con.execute("INSERT INTO t SELECT *, 1 FROM validated")
    con.close()
    return table.num_rows / t[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="slokit runs per figure (median)")
    args = ap.parse_args()
    n = args.events
    rows = []
    for fmt, path, reader, target in (
        ("parquet", parquet_file(n), "read_parquet", 1_000_000),
        ("jsonl", jsonl_file(n), "read_json", 200_000),
    ):
        base = duckdb_baseline(str(path), reader, n)
        plain = slokit_ingest(str(path), with_rollups=False, rounds=args.rounds)
        rolled = slokit_ingest(str(path), with_rollups=True, rounds=args.rounds)
        floor = arrow_insert_floor(str(path)) if fmt == "parquet" else None
        rows.append(
            {
                "format": fmt,
                "events": n,
                "slokit_per_s": round(plain),
                "slokit_with_12_rollups_per_s": round(rolled),
                "duckdb_raw_load_per_s": round(base),
                "ratio_to_duckdb": round(plain / base, 2),
                "arrow_insert_floor_per_s": None if floor is None else round(floor),
                "target_per_s": target,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'format':8} {'events':>10} {'slokit/s':>12} {'+rollups/s':>12} "
        f"{'duckdb raw/s':>13} {'ratio':>6} {'insert floor/s':>15} {'target/s':>10}"
    )
    for r in rows:
        floor_text = f"{r['arrow_insert_floor_per_s']:,}" if r["arrow_insert_floor_per_s"] else "-"
        print(
            f"{r['format']:8} {r['events']:>10,} {r['slokit_per_s']:>12,} "
            f"{r['slokit_with_12_rollups_per_s']:>12,} {r['duckdb_raw_load_per_s']:>13,} "
            f"{r['ratio_to_duckdb']:>6} {floor_text:>15} {r['target_per_s']:>10,}"
        )


if __name__ == "__main__":
    main()
