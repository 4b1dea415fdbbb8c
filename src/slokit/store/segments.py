"""Bulk appends as Parquet segments beside the DuckDB file.

A big append (`SEGMENT_ROWS` events or more, e.g. `slokit ingest` of a large file)
is written as Parquet files under `<db>.segments/<kind>/_seq=<batch>/` instead of
being inserted into DuckDB's own table: on this 2-core machine DuckDB inserts our
21-column request rows at about 0.7-0.8M/s, and loads the same Parquet file itself at
about 0.6M/s, while pyarrow writes them as Parquet at about 3M/s on two threads
(bench/ingest_bulk.py). The view `request_events` (and `score_events`) is DuckDB's
own table of small appends UNION ALL the segments, read with hive partitioning, so
`_seq` comes from the directory name and a read of recent batches (`_seq > n`) opens
only their files.

Durability and crashes: a segment is written to `*.part` files, fsynced, renamed into
place and its directory fsynced before the append's transaction commits. A segment
whose batch number is above the committed one, and any `*.part` file, is a crash's
leftover and is removed when the writer next opens the store.

The `.duckdb` file and its `.segments` directory belong together: move or copy both.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEGMENT_ROWS = 100_000  # appends of at least this many events become a segment
KINDS = ("request", "score")  # annotations are few: always DuckDB rows
ROW_GROUP = 122_880
_PART_ROWS = 2 * ROW_GROUP  # a segment is cut into files of at least this many rows,
_THREADS = 2  # written in parallel
_ID_COLUMNS = {"event_id", "request_id", "comment", "text"}  # unique-ish: no dictionary
PLACEHOLDER = "_seq=0"  # an empty file, so the view's glob always matches


class Segments:
    """The segment directory of one DuckDB file; owned by the store's writer."""

    def __init__(self, db_path: str | Path) -> None:
        db = Path(db_path).resolve()
        self.base = db.parent  # DuckDB's file_search_path: the view's paths are relative
        self.root = db.with_name(db.name + ".segments")

    def glob(self, kind: str) -> str:
        """The view's file pattern, relative to `base`."""
        return f"{self.root.name}/{kind}/*/*.parquet"

    def view_sql(self, view: str, rows_table: str, kind: str) -> str:
        pattern = self.glob(kind).replace("'", "''")
        return (
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {rows_table} UNION ALL BY NAME "
            f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, "
            "hive_types = {'_seq': BIGINT})"
        )

    def prepare(self, schemas: dict[str, pa.Schema], committed_seq: int) -> None:
        """Make the directories and placeholders; remove what a crash left behind."""
        for kind in KINDS:
            d = self.root / kind
            d.mkdir(parents=True, exist_ok=True)
            empty = d / PLACEHOLDER / "empty.parquet"
            if not empty.exists():
                empty.parent.mkdir(exist_ok=True)
                pq.write_table(schemas[kind].empty_table(), empty)
            for seg in d.iterdir():
                seq = _seq_of(seg)
                if seq is None or seq > committed_seq:
                    shutil.rmtree(seg, ignore_errors=True)
                    continue
                for leftover in seg.glob("*.part"):
                    leftover.unlink(missing_ok=True)

    def write(self, kind: str, seq: int, table: pa.Table) -> Path:
        """Write `table` as batch `seq`'s segment, durably; returns its directory."""
        seg = self.root / kind / f"_seq={seq}"
        if seg.exists():  # a leftover of a rolled-back attempt at this batch number
            shutil.rmtree(seg)
        seg.mkdir()
        n = table.num_rows
        parts = max(1, min(_THREADS, n // _PART_ROWS))
        step = -(-n // parts)
        slices = [table.slice(i * step, step) for i in range(parts)]
        dictionary = [
            f.name for f in table.schema if pa.types.is_string(f.type) and f.name not in _ID_COLUMNS
        ]

        def one(i: int) -> Path:
            tmp = seg / f"part-{i}.parquet.part"
            pq.write_table(
                slices[i],
                tmp,
                row_group_size=ROW_GROUP,
                compression="snappy",
                use_dictionary=dictionary,
                write_statistics=["ts"],
            )
            _fsync(tmp)
            return tmp

        try:
            if parts == 1:
                written = [one(0)]
            else:
                with ThreadPoolExecutor(parts) as pool:
                    written = list(pool.map(one, range(parts)))
            for tmp in written:
                tmp.rename(tmp.with_suffix(""))  # drop `.part`: now the view sees it
            _fsync(seg)
            _fsync(seg.parent)
        except BaseException:
            shutil.rmtree(seg, ignore_errors=True)
            raise
        return seg

    def seqs(self, kind: str) -> list[int] | None:
        """The batch numbers stored as segments, or None when this store has no
        segment directory (written by a slokit from before segments)."""
        try:
            entries = os.listdir(self.root / kind)
        except FileNotFoundError:
            return None
        return [int(e[5:]) for e in entries if e.startswith("_seq=") and e[5:].isdigit()]

    def missing(self, committed: list[tuple[str, int]]) -> list[Path]:
        """The directories of committed segments that are not there."""
        return [
            d
            for kind, seq in committed
            if not any((d := self.root / kind / f"_seq={seq}").glob("*.parquet"))
        ]

    def discard(self, seg: Path) -> None:
        """Remove a segment whose transaction did not commit."""
        shutil.rmtree(seg, ignore_errors=True)


def copy_store(src: str | Path, dst: str | Path) -> None:
    """Copy a closed store: its DuckDB file and its segments (hard links where the file
    system allows: a segment is never changed once written)."""
    src, dst = Path(src), Path(dst)
    remove_store(dst)
    shutil.copyfile(src, dst)
    seg = src.with_name(src.name + ".segments")
    if seg.is_dir():
        shutil.copytree(seg, dst.with_name(dst.name + ".segments"), copy_function=_link_or_copy)


def _link_or_copy(a: str, b: str) -> None:
    try:
        os.link(a, b)
    except OSError:
        shutil.copy2(a, b)


def remove_store(db_path: str | Path) -> None:
    """Delete a store: its DuckDB file, write-ahead log and segments."""
    db = Path(db_path)
    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)
    shutil.rmtree(db.with_name(db.name + ".segments"), ignore_errors=True)


def _seq_of(seg: Path) -> int | None:
    name = seg.name
    if not (seg.is_dir() and name.startswith("_seq=")):
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
