"""Appends as Parquet segments beside the DuckDB file.

An append of `SEGMENT_ROWS` events or more (a gateway's delivery, `slokit ingest` of a
file) is written as Parquet files under `<db>.segments/<kind>/_seq=<batch>/` instead of
being inserted into DuckDB's own table: on this 2-core machine DuckDB inserts our
21-column request rows at about 0.7-0.8M/s, and loads the same Parquet file itself at
about 0.6M/s, while pyarrow writes them as Parquet at about 3M/s on two threads
(bench/ingest_bulk.py); a gateway's 5-second delivery of 13,500 requests and their
40,500 check scores cost the store about 310 ms of CPU as DuckDB rows (insert, commit,
checkpoint) and 78 ms as segments (bench/store_deliveries.py). The view `request_events`
(and `score_events`) is DuckDB's own table of small appends UNION ALL the committed
segments' files, listed by name in the view and read with hive partitioning, so `_seq`
comes from the directory name and a read of recent batches (`_seq > n`) opens only
their files. The view is replaced in the transaction that commits a segment, so a read
sees a segment exactly when it sees its batch.

Small segments are merged (`DuckDBStore` compaction) into one file in the directory of
the newest of them, so their rows take that batch number: only batches every rollup has
already folded are merged, and reads after a fold never look below it, so no count
moves. The merged files stay on disk until the next merge (a read that began before it
may still open them) and are removed when the writer next opens the store. A store
whose segment files are on disk but none recorded (written by a development build
before the `segments` table) has them recorded when the writer opens it, not removed.

Durability and crashes: a segment is written to `*.part` files, fsynced, renamed into
place and its directory fsynced before the append's transaction commits. A file that
no committed segment lists, a segment whose batch number is above the committed one,
and any `*.part` file, is a crash's leftover and is removed when the writer next opens
the store.

The `.duckdb` file and its `.segments` directory belong together: move or copy both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Appends of at least this many events become a segment. A segment's fixed cost (a
# file, three fsyncs, the view's file list, a share of the merges) is 12-15 ms: DuckDB
# rows cost less up to about 2,000 requests or 3,000 scores, and HTTP ingest's
# 1,000-event batches, even four in one group commit, measured faster as rows.
SEGMENT_ROWS = 5_000
COMPACT_ROWS = 100_000  # segments smaller than this are merged ...
COMPACT_AT = 32  # ... once this many of a kind wait
KINDS = ("request", "score")  # annotations are few: always DuckDB rows
ROW_GROUP = 122_880
_PART_ROWS = 2 * ROW_GROUP  # a segment is cut into files of at least this many rows,
_THREADS = 2  # written in parallel
_ID_COLUMNS = {"event_id", "request_id", "comment", "text"}  # unique-ish: no dictionary
PLACEHOLDER = "_seq=0"  # an empty file, listed first, so the view reads a file list never empty


class Segments:
    """The segment directory of one DuckDB file; owned by the store's writer."""

    def __init__(self, db_path: str | Path) -> None:
        db = Path(db_path).resolve()
        self.base = db.parent  # DuckDB's file_search_path: the view's paths are relative
        self.root = db.with_name(db.name + ".segments")

    def relative(self, path: Path) -> str:
        """How the view names a file: relative to `base`, DuckDB's file_search_path."""
        return path.relative_to(self.base).as_posix()

    def view_sql(self, view: str, rows_table: str, kind: str, files: Iterable[str]) -> str:
        """The view over DuckDB's rows and the segment `files` (relative paths)."""
        names = [self.relative(self.root / kind / PLACEHOLDER / "empty.parquet"), *files]
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in names)
        return (
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {rows_table} UNION ALL BY NAME "
            f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
            "hive_types = {'_seq': BIGINT})"
        )

    def on_disk(self, kind: str, seq: int) -> list[str]:
        """The Parquet files in batch `seq`'s directory (relative paths)."""
        return sorted(
            self.relative(f) for f in (self.root / kind / f"_seq={seq}").glob("*.parquet")
        )

    def prepare(
        self, schemas: dict[str, pa.Schema], committed_seq: int, listed: set[str] | None = None
    ) -> None:
        """Make the directories and placeholders; remove what a crash left behind, and
        files that no committed segment lists (`listed`, when known)."""
        for kind in KINDS:
            d = self.root / kind
            d.mkdir(parents=True, exist_ok=True)
            empty = d / PLACEHOLDER / "empty.parquet"
            if not empty.exists():
                empty.parent.mkdir(exist_ok=True)
                pq.write_table(schemas[kind].empty_table(), empty)
            for seg in d.iterdir():
                seq = _seq_of(seg)
                if seq == 0:
                    continue
                if seq is None or seq > committed_seq:
                    shutil.rmtree(seg, ignore_errors=True)
                    continue
                for leftover in seg.glob("*.part"):
                    leftover.unlink(missing_ok=True)
                if listed is None:
                    continue
                for f in seg.glob("*.parquet"):
                    if self.relative(f) not in listed:
                        f.unlink(missing_ok=True)
                if not any(seg.iterdir()):
                    seg.rmdir()

    def write(self, kind: str, seq: int, table: pa.Table, stem: str = "part") -> list[str]:
        """Write `table` as files of batch `seq`'s segment, durably; returns their
        relative paths. `stem` other than "part" adds files to an existing directory
        (a merge of small segments)."""
        seg = self.root / kind / f"_seq={seq}"
        fresh = stem == "part"
        if fresh and seg.exists():  # a leftover of a rolled-back attempt at this batch
            shutil.rmtree(seg)
        seg.mkdir(exist_ok=not fresh)
        n = table.num_rows
        parts = max(1, min(_THREADS, n // _PART_ROWS))
        step = -(-n // parts)
        slices = [table.slice(i * step, step) for i in range(parts)]
        dictionary = [
            f.name for f in table.schema if pa.types.is_string(f.type) and f.name not in _ID_COLUMNS
        ]

        def one(i: int) -> Path:
            tmp = seg / f"{stem}-{i}.parquet.part"
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

        done: list[Path] = []
        try:
            if parts == 1:
                written = [one(0)]
            else:
                with ThreadPoolExecutor(parts) as pool:
                    written = list(pool.map(one, range(parts)))
            for tmp in written:
                tmp.rename(tmp.with_suffix(""))  # drop `.part`
                done.append(tmp.with_suffix(""))
            _fsync(seg)
            _fsync(seg.parent)
        except BaseException:
            if fresh:
                shutil.rmtree(seg, ignore_errors=True)
            else:
                for f in [*done, *seg.glob(f"{stem}-*.part")]:
                    f.unlink(missing_ok=True)
            raise
        return [self.relative(f) for f in done]

    def read(self, files: Iterable[str]) -> pa.Table:
        """The rows of segment `files` (relative paths), without `_seq`."""
        return pa.concat_tables([pq.ParquetFile(self.base / f).read() for f in files])

    def rows(self, files: Iterable[str]) -> int:
        """How many rows segment `files` hold, from their footers."""
        return sum(pq.read_metadata(self.base / f).num_rows for f in files)

    def seqs(self, kind: str) -> list[int] | None:
        """The batch numbers stored as segments, or None when this store has no
        segment directory (written by a slokit from before segments)."""
        try:
            entries = os.listdir(self.root / kind)
        except FileNotFoundError:
            return None
        return [int(e[5:]) for e in entries if e.startswith("_seq=") and e[5:].isdigit()]

    def missing(self, committed: list[tuple[str, int, str | None]]) -> list[Path]:
        """The committed segments' files (or, where not listed, directories) that are
        not there."""
        gone = []
        for kind, seq, files in committed:
            d = self.root / kind / f"_seq={seq}"
            if files is None:
                if not any(d.glob("*.parquet")):
                    gone.append(d)
                continue
            gone.extend(p for f in split_files(files) if not (p := self.base / f).exists())
        return gone

    def discard(self, files: Iterable[str]) -> None:
        """Remove segment files that are no longer (or were never) committed, and
        their directory once it is empty."""
        for f in files:
            path = self.base / f
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: other files of the batch
                path.parent.rmdir()


def split_files(files: str) -> list[str]:
    """A segment's files as stored in the `segments` table (`;`-separated)."""
    return [f for f in files.split(";") if f]


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
