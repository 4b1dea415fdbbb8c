"""Shared pieces of the benchmarks: demo data files, timing, peak memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from slokit.demo.traffic import generate, plan
from slokit.store.segments import remove_store

DATA = Path(__file__).resolve().parent / ".data"
END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def demo_requests(n: int, rate: float = 1157.0) -> Iterator[pa.Table]:
    """About `n` demo requests, in time order, a day at a time."""
    done = 0
    for requests, _ in generate(plan(END, days=30), rate_per_minute=rate):
        yield requests
        done += requests.num_rows
        if done >= n:
            return


def parquet_file(n: int) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"requests-{n}.parquet"
    if not path.exists():
        table = pa.concat_tables(list(demo_requests(n)))
        pq.write_table(table.slice(0, n), path)
    return path


def jsonl_file(n: int) -> Path:
    import duckdb

    path = DATA / f"requests-{n}.jsonl"
    if not path.exists():
        src = parquet_file(n)
        duckdb.sql(f"COPY (SELECT * FROM '{src}') TO '{path}' (FORMAT json)")
    return path


def fresh(path: Path) -> Path:
    remove_store(path)
    return path


@contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux
    copies ru_maxrss from the parent on fork, so a child spawned by a big parent
    reports the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
