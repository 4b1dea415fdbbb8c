"""The embedded event store: one DuckDB file, one owner.

Raw events land in `request_rows`, `score_rows` and `annotations`, each row stamped
with the ingest batch number `_seq`; an append of `segment_rows` events or more is
written as a Parquet segment instead (`slokit.store.segments`), small segments are
merged once `compact_at` of a kind wait, and reads go through the views
`request_events` and `score_events`, which join both. For every registered
count definition (one per SLO, `slokit.store.definitions`) a per-minute rollup table
`rollup_<id>` holds good/valid counts per group; it only ever appends (every SLI is
additive per minute), and a definition remembers the last batch it has folded in, so
keeping it current reads only the new rows (DESIGN.md, storage rules).

Rollups fold new events in once `refresh_rows` of them wait (and on `refresh` and
`close`), not at every commit; a read counts what is not folded yet from the raw
events, so it is always exact. An append probes the stored events for its ids only
when its time range reaches back to what is stored, and never for batches with an
idempotency key (`slokit.store.batch_keys`), which are deduplicated by their key.

All writes go through one lock on one connection; reads use their own cursors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.errors import StoreError
from slokit.events.schema import ANNOTATION, REQUEST_EVENT, SCORE_EVENT
from slokit.store.batch_keys import TABLE_SQL as BATCH_KEYS_SQL
from slokit.store.batch_keys import BatchKeys
from slokit.store.definitions import MINUTE, CountDef
from slokit.store.segments import (
    COMPACT_AT,
    COMPACT_ROWS,
    KINDS,
    SEGMENT_ROWS,
    Segments,
    split_files,
)

# What reads name: views over DuckDB's own rows and the Parquet segments of bulk
# appends (`slokit.store.segments`) for requests and scores; a table for annotations.
TABLES = {"request": "request_events", "score": "score_events", "annotation": "annotations"}
# Where small appends are inserted.
ROWS = {"request": "request_rows", "score": "score_rows", "annotation": "annotations"}
_KIND_OF = {"request_events": "request", "score_events": "score"}
SCHEMAS = {"request": REQUEST_EVENT, "score": SCORE_EVENT, "annotation": ANNOTATION}
DEFAULT_PATH = "slokit.duckdb"
_log = logging.getLogger("slokit.store")
# Rollups fold new events in once this many are waiting (or on `refresh`/`close`),
# not at every commit: 12 rollup statements cost ~60 ms, a 1,000-event commit ~15 ms.
# Reads stay exact meanwhile: `rollup` counts the unfolded rows from the raw events.
REFRESH_ROWS = 50_000
SCAN_ROWS = 122_880  # one DuckDB row group; an Arrow batch is one unit of scan work


@dataclass(frozen=True)
class _Segment:
    rows: int
    lo: int | None  # epoch microseconds; None: not recorded (a store from before)
    hi: int | None
    files: tuple[str, ...]


@dataclass(frozen=True)
class AppendResult:
    received: int
    inserted: int
    # the batch's idempotency key was stored: nothing was stored now, and the counts
    # are those of the batch that first carried the key
    replayed: bool = False

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted


@dataclass(frozen=True)
class Rollup:
    """Per-minute counts of one definition, sparse: one row per (minute, group)."""

    minute: np.ndarray
    group: np.ndarray  # int32 index into `groups` for each row
    groups: list[str]  # the group keys these rows use
    good: np.ndarray
    valid: np.ndarray
    aux: np.ndarray
    seq: int  # the last ingest batch these counts include


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_map(t):
        return "MAP(VARCHAR, VARCHAR)"
    return {
        pa.string(): "VARCHAR",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }[t]


def _create_sql(name: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {_sql_type(f.type)}' for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {name} ({cols}, _seq BIGINT NOT NULL)"


# Alert state (one row per alert, replaced on change), alert history (one row per
# firing or resolve) and the notification delivery log. `detail` is JSON.
ALERT_TABLES = (
    "CREATE TABLE IF NOT EXISTS alert_state (key VARCHAR PRIMARY KEY, service VARCHAR, "
    "slo VARCHAR, grp VARCHAR, severity VARCHAR, reason VARCHAR, state VARCHAR, "
    "pending_since TIMESTAMPTZ, fired_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, "
    "updated_at TIMESTAMPTZ, detail VARCHAR)",
    "CREATE TABLE IF NOT EXISTS alert_log (ts TIMESTAMPTZ, key VARCHAR, action VARCHAR, "
    "service VARCHAR, slo VARCHAR, grp VARCHAR, severity VARCHAR, reason VARCHAR, "
    "detail VARCHAR)",
    "CREATE TABLE IF NOT EXISTS deliveries (finished_at TIMESTAMPTZ, key VARCHAR, "
    "receiver VARCHAR, receiver_type VARCHAR, action VARCHAR, slo VARCHAR, "
    "severity VARCHAR, attempts INTEGER, ok BOOLEAN, status INTEGER, error VARCHAR, "
    "first_attempt_at TIMESTAMPTZ)",
)
_ALERT_STATE_COLS = (
    "key, service, slo, grp, severity, reason, state, pending_since, fired_at, "
    "resolved_at, updated_at, detail"
)
_ALERT_LOG_COLS = "ts, key, action, service, slo, grp, severity, reason, detail"
_DELIVERY_COLS = (
    "finished_at, key, receiver, receiver_type, action, slo, severity, attempts, ok, "
    "status, error, first_attempt_at"
)


class DuckDBStore:
    """Owns the DuckDB file. Open read-write in exactly one process."""

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        read_only: bool = False,
        memory_limit: str = "1GB",
        refresh_rows: int = REFRESH_ROWS,
        segment_rows: int = SEGMENT_ROWS,
        compact_rows: int = COMPACT_ROWS,
        compact_at: int = COMPACT_AT,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.refresh_rows = refresh_rows
        self.segment_rows = segment_rows  # appends this big become Parquet segments
        self.compact_rows = compact_rows  # segments smaller than this are merged ...
        self.compact_at = compact_at  # ... once this many of a kind wait
        self._segments = None if self.path == ":memory:" else Segments(self.path)
        # What the single writer knows of its own file, so an append need not ask:
        # the last batch number, each table's latest ts, the rollup definitions, and
        # how many rows the rollups have not folded in yet (unknown at first).
        self._seq: int | None = None
        self._max_ts: dict[str, int | None] = {}  # epoch microseconds
        self._segs: dict[str, dict[int, _Segment]] | None = None  # committed segments
        self._retired: list[str] = []  # merged files, removed at the next merge
        self._defs: list[tuple[str, CountDef, int]] | None = None
        self._unfolded = refresh_rows
        # batches that reads saw before the rollups had folded them in (see `rollup`)
        self._seen: set[int] = set()
        self._fold_lock = threading.Lock()
        self._keys = BatchKeys(self._exec)  # idempotency keys of committed batches
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            hint = (
                "another slokit process (`slokit serve`?) holds it; stop it, or ask that "
                "server: GET /v1/status (serve with --spec), POST /v1/events"
                if "lock" in str(exc).lower()
                else "check the path and its permissions"
            )
            raise StoreError(f"{self.path}: cannot open the event store: {hint} ({exc})") from exc
        self._con.execute(f"SET memory_limit = '{memory_limit}'")
        # Every read that needs an order says ORDER BY. Without this, DuckDB writes big
        # inserts straight to compressed blocks instead of re-compressing them at the
        # next checkpoint: a 1M-event append took 1.6 s instead of 3.2 s here.
        self._con.execute("SET preserve_insertion_order = false")
        if self._segments is not None:  # the views name their segments relative to it
            base = str(self._segments.base).replace("'", "''")
            self._con.execute(f"SET GLOBAL file_search_path = '{base}'")
        self._lock = threading.RLock()
        if read_only:
            self._check_segments()
        else:
            self._create()

    # -- lifecycle ---------------------------------------------------------------

    def _create(self) -> None:
        with self._lock:
            self._exec("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)")
            self._exec("INSERT OR IGNORE INTO meta VALUES ('seq', 0)")
            kinds = {
                name: kind
                for name, kind in self._exec(
                    "SELECT table_name, table_type FROM information_schema.tables"
                )
            }
            # the segments committed so far, to notice a file moved without them
            self._exec(
                "CREATE TABLE IF NOT EXISTS segments (kind VARCHAR, seq BIGINT, rows BIGINT)"
            )
            # and the time each spans, so that a dedupe probe reads them only when a
            # batch's time range reaches one (epoch microseconds)
            self._exec("ALTER TABLE segments ADD COLUMN IF NOT EXISTS lo BIGINT")
            self._exec("ALTER TABLE segments ADD COLUMN IF NOT EXISTS hi BIGINT")
            # and its files (`;`-separated, relative to the store's directory): the
            # views list them, so a read sees exactly the committed ones
            self._exec("ALTER TABLE segments ADD COLUMN IF NOT EXISTS files VARCHAR")
            for kind, view in TABLES.items():
                rows = ROWS[kind]
                if rows != view and kinds.get(view) == "BASE TABLE":
                    # a store written before segments: its table becomes the rows table
                    self._exec(f"ALTER TABLE {view} RENAME TO {rows}")
                self._exec(_create_sql(rows, SCHEMAS[kind]))
            if self._segments is not None:
                self._check_segments()  # before the views name their files
                segs = self._load_segments()
                if not any(segs.values()) and self._adopt_unrecorded():
                    segs = self._load_segments()
                listed = {f for by in segs.values() for g in by.values() for f in g.files}
                self._segments.prepare(SCHEMAS, committed_seq=self.seq(), listed=listed)
            for kind, view in TABLES.items():
                rows = ROWS[kind]
                if rows == view:
                    continue
                if self._segments is None:
                    self._exec(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {rows}")
                else:
                    self._put_view(kind)
            self._exec(
                "CREATE TABLE IF NOT EXISTS rollup_defs (def_id VARCHAR PRIMARY KEY, "
                "definition VARCHAR, seq BIGINT)"
            )
            for sql in ALERT_TABLES:
                self._exec(sql)
            self._exec(BATCH_KEYS_SQL)

    def _load_segments(self) -> dict[str, dict[int, _Segment]]:
        """The committed segments, from the `segments` table; a segment recorded before
        its files were (an older slokit) gets the files its directory holds."""
        assert self._segments is not None
        segs: dict[str, dict[int, _Segment]] = {k: {} for k in KINDS}
        rows = self._exec("SELECT kind, seq, rows, lo, hi, files FROM segments")
        for kind, seq, n, lo, hi, files in rows:
            if files is None:
                found = self._segments.on_disk(kind, seq)
                files = ";".join(found)
                if found:
                    self._exec(
                        "UPDATE segments SET files = $f WHERE kind = $k AND seq = $s",
                        {"f": files, "k": kind, "s": seq},
                    )
            segs[kind][int(seq)] = _Segment(int(n), lo, hi, tuple(split_files(files)))
        self._segs = segs
        return segs

    def _adopt_unrecorded(self) -> int:
        """Record segments that a development build wrote without recording them: with
        no committed segment at all, files in batch directories up to the committed
        batch are not a crash's leftovers (a segment's batch commits with its record,
        and a merge leaves its merged segment recorded), so they are adopted instead of
        removed. Returns how many."""
        assert self._segments is not None
        top, adopted = self.seq(), 0
        for kind in KINDS:
            for seq in sorted(self._segments.seqs(kind) or []):
                files = self._segments.on_disk(kind, seq) if 0 < seq <= top else []
                if files:
                    self._exec(
                        "INSERT INTO segments (kind, seq, rows, files) VALUES ($k, $s, $n, $f)",
                        {
                            "k": kind,
                            "s": seq,
                            "n": self._segments.rows(files),
                            "f": ";".join(files),
                        },
                    )
                    adopted += 1
        if adopted:
            _log.warning(
                "%s: recorded %d segments that were on disk unrecorded", self.path, adopted
            )
        return adopted

    def _segs_of(self, kind: str) -> dict[int, _Segment]:
        segs = self._segs if self._segs is not None else self._load_segments()
        return segs[kind]

    def _put_view(self, kind: str, segs: dict[int, _Segment] | None = None) -> None:
        """(Re)define `kind`'s view over its rows and these committed segments, in the
        current transaction."""
        assert self._segments is not None
        by = self._segs_of(kind) if segs is None else segs
        files = [f for seq in sorted(by) for f in by[seq].files]
        self._exec(self._segments.view_sql(TABLES[kind], ROWS[kind], kind, files))

    def _record_segment(self, kind: str, seq: int, segs: dict[int, _Segment]) -> None:
        """Record segment `segs[seq]` in the `segments` table and the view, in the
        current transaction; `segs` is every committed segment of `kind` after it."""
        g = segs[seq]
        self._exec(
            "INSERT INTO segments (kind, seq, rows, lo, hi, files) "
            "VALUES ($k, $s, $n, $lo, $hi, $f)",
            {"k": kind, "s": seq, "n": g.rows, "lo": g.lo, "hi": g.hi, "f": ";".join(g.files)},
        )
        self._put_view(kind, segs)

    def _check_segments(self) -> None:
        """Fail clearly when committed segments are missing (the .duckdb file was
        moved or copied without its .segments directory) instead of answering with
        their events left out."""
        if self._segments is None:
            return
        try:
            committed = self._cursor().execute("SELECT kind, seq, files FROM segments").fetchall()
        except duckdb.BinderException:  # opened read-only, from before files were listed
            committed = [
                (k, q, None)
                for k, q in self._cursor().execute("SELECT kind, seq FROM segments").fetchall()
            ]
        except duckdb.CatalogException:  # a store from before segments
            return
        missing = self._segments.missing([(str(k), int(q), f) for k, q, f in committed])
        if missing:
            self._con.close()
            raise StoreError(
                f"{self.path}: {len(missing)} of its {len(committed)} Parquet segments are "
                f"missing (first: {missing[0]}); a store is its .duckdb file and its "
                f"{self._segments.root.name} directory together: move or copy both "
                "(slokit.store.copy_store)"
            )

    def close(self) -> None:
        with self._lock:
            if not self.read_only and self._unfolded:
                self.refresh()
            self._con.close()
            if self._segments is not None and self._retired:
                self._segments.discard(self._retired)
                self._retired = []

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, params: dict[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on the write connection and drain its result."""
        return self._con.execute(sql, params or {}).fetchall()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; writes go through `slokit serve`")

    # -- writes ------------------------------------------------------------------

    def seq(self) -> int:
        if self._seq is not None:
            return self._seq
        rows = self._cursor().execute("SELECT value FROM meta WHERE key = 'seq'").fetchall()
        return int(rows[0][0]) if rows else 0

    def append(self, kind: str, table: pa.Table, key: str | None = None) -> AppendResult:
        """Insert validated records, skipping event_ids already stored (idempotent
        ingest), in one transaction; rollups follow (`refresh_rows`). With an
        idempotency `key` (`slokit.store.batch_keys`), a batch whose key is stored is
        answered as first stored and not stored again, and its ids are not probed."""
        return self.append_many(kind, [table], [key])[0]

    def append_many(
        self, kind: str, tables: list[pa.Table], keys: list[str | None] | None = None
    ) -> list[AppendResult]:
        """`append` for several batches in one transaction (group commit), with each
        batch's own counts. An event_id repeated across batches is stored once, for
        the first batch that carries it; so is a batch whose key an earlier one has."""
        self._require_writable()
        schema = SCHEMAS[kind]
        parts = [t if t.schema == schema else t.cast(schema) for t in tables]
        keys = [None] * len(parts) if keys is None else keys
        results: list[AppendResult | None] = [None] * len(parts)
        with self._lock:
            stored = self._keys.find(kind, keys) if any(k is not None for k in keys) else {}
            fresh: list[int] = []
            first: dict[str, int] = {}  # key -> the batch of this group that carries it
            for i, key in enumerate(keys):
                if key is not None and key in stored:
                    results[i] = AppendResult(*stored[key], replayed=True)
                elif key is None or key not in first:
                    fresh.append(i)
                    if key is not None:
                        first[key] = i
            if fresh:
                # a keyed batch vouches for its ids: probed only among the batches
                trusted = all(keys[i] is not None for i in fresh)
                counts = self._append_new(kind, [parts[i] for i in fresh], keys, fresh, trusted)
                for i, n in zip(fresh, counts, strict=True):
                    results[i] = AppendResult(parts[i].num_rows, n)
        out: list[AppendResult] = []
        for r, key in zip(results, keys, strict=True):
            if r is None:  # a key repeated in the group: answered as its first batch
                done = results[first[str(key)]]
                assert done is not None
                r = AppendResult(done.received, done.inserted, replayed=True)
            out.append(r)
        return out

    def _append_new(
        self,
        kind: str,
        parts: list[pa.Table],
        keys: list[str | None],
        at: list[int],
        trusted: bool,
    ) -> list[int]:
        """Store `parts` (batches `at` of the group) in one transaction; how many events
        of each were new. Called with the write lock held."""
        schema = SCHEMAS[kind]
        sizes = [t.num_rows for t in parts]
        if sum(sizes) == 0:
            return sizes
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        ts = table.column("ts")
        span = pc.min_max(ts.cast(pa.int64()))
        lo, hi = span["min"].as_py(), span["max"].as_py()  # epoch microseconds
        segment: list[str] | None = None
        con = self._con
        self._exec("BEGIN TRANSACTION")
        try:
            seq = self.seq() + 1
            keep = self._new_rows(kind, table, lo, hi, probe=not trusted)
            if keep is None:
                inserted = sizes
            else:
                table = table.filter(pa.array(keep))
                kept = np.concatenate([[0], np.cumsum(keep)])[np.cumsum([0, *sizes])]
                inserted = np.diff(kept).tolist()
            if (
                self._segments is not None
                and kind != "annotation"
                and table.num_rows >= self.segment_rows
            ):
                segment = self._segments.write(kind, seq, table)
                segs = dict(self._segs_of(kind))
                segs[seq] = _Segment(table.num_rows, lo, hi, tuple(segment))
                self._record_segment(kind, seq, segs)
            else:
                # DuckDB scans an Arrow table one batch per thread: cut big ones
                batches = table.to_batches(max_chunksize=SCAN_ROWS)
                con.register("_batch", pa.Table.from_batches(batches, schema=schema))
                try:
                    self._exec(f"INSERT INTO {ROWS[kind]} SELECT *, {seq} FROM _batch")
                finally:
                    con.unregister("_batch")
            keyed = [
                (key, n, i)
                for key, n, i in zip((keys[j] for j in at), sizes, inserted, strict=True)
                if key is not None
            ]
            self._keys.add(kind, seq, keyed)
            self._exec("UPDATE meta SET value = $s WHERE key = 'seq'", {"s": seq})
            self._unfolded += table.num_rows
            if self._unfolded >= self.refresh_rows and kind != "annotation":
                with self._fold_lock:  # held through the commit: see `rollup`
                    self._refresh_locked(upto=seq)
                    self._exec("COMMIT")
            else:
                self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            if segment is not None and self._segments is not None:
                self._segments.discard(segment)
            self._forget()
            raise
        self._seq = seq
        self._keys.committed(kind, seq, [k for k, _, _ in keyed])
        if segment is not None:
            self._segs_of(kind)[seq] = segs[seq]
            try:
                self._compact(kind)
            except Exception:  # the append has committed; merging can wait
                _log.exception("%s: could not merge small %s segments", self.path, kind)
        if table.num_rows:
            top = self._max_ts.get(kind)
            self._max_ts[kind] = hi if top is None or hi > top else top
        return [int(n) for n in inserted]

    def _new_rows(
        self, kind: str, table: pa.Table, lo: int, hi: int, *, probe: bool = True
    ) -> np.ndarray | None:
        """Which rows to store: None for all of them, else a mask that drops the
        event_ids already stored (same id, within the batch's time range) and
        repeats within the batch after the first. The stored table is probed only
        when the batch's time range reaches back to what it holds, and `probe`."""
        keep: np.ndarray | None = None
        if _has_repeats(self._con, table):
            ids = pc.dictionary_encode(table.column("event_id")).combine_chunks()
            codes = np.asarray(ids.indices.to_numpy(zero_copy_only=False))
            keep = np.zeros(table.num_rows, dtype=bool)
            keep[np.unique(codes, return_index=True)[1]] = True
        if not probe:
            return keep
        top = self._stored_max_ts(kind)
        if top is None or lo > top:
            return keep
        # the view only when a segment's time span meets the batch's: reading through it
        # costs a look at the segment directory (about 1 ms), a 1,000-event append ~10 ms
        stored = TABLES[kind] if self._meets_segment(kind, lo, hi) else ROWS[kind]
        probe = table.select(["event_id", "ts"]).append_column(
            "_pos", pa.array(np.arange(table.num_rows, dtype=np.int64))
        )
        self._con.register("_probe", probe)
        try:
            found = self._con.execute(
                f"SELECT b._pos FROM _probe b SEMI JOIN {stored} e "
                "ON e.event_id = b.event_id AND e.ts BETWEEN make_timestamptz($lo) "
                "AND make_timestamptz($hi)",
                {"lo": lo, "hi": hi},
            ).fetchnumpy()["_pos"]
        finally:
            self._con.unregister("_probe")
        if len(found):
            keep = np.ones(table.num_rows, dtype=bool) if keep is None else keep
            keep[np.asarray(found, dtype=np.int64)] = False
        return keep

    def _meets_segment(self, kind: str, lo: int, hi: int) -> bool:
        if self._segments is None or kind == "annotation":
            return False
        # a span not recorded (a store from before spans) counts as all time
        return any(
            (g.lo is None or g.lo <= hi) and (g.hi is None or lo <= g.hi)
            for g in self._segs_of(kind).values()
        )

    def _stored_max_ts(self, kind: str) -> int | None:
        if kind not in self._max_ts:
            rows = self._exec(f"SELECT epoch_us(max(ts)) FROM {TABLES[kind]}")
            self._max_ts[kind] = None if rows[0][0] is None else int(rows[0][0])
        return self._max_ts[kind]

    def _compact(self, kind: str) -> None:
        """Merge small segments once `compact_at` of `kind` wait: the oldest, up to
        `compact_rows` rows, become one file in the newest one's directory, so their
        rows take its batch number. Only batches that every registered rollup has
        folded are merged (any batch when none is registered): reads and folds after
        that point never select below it, so no count changes. A failed merge leaves
        the segments as they were."""
        assert self._segments is not None
        by = self._segs_of(kind)
        small = sorted(s for s, g in by.items() if g.rows < self.compact_rows)
        if len(small) < self.compact_at:
            return
        folded = self._folded_upto()
        group: list[int] = []
        rows = 0
        for s in small:
            if s > folded or rows >= self.compact_rows:
                break
            group.append(s)
            rows += by[s].rows
        if len(group) < 2:
            return
        old = [f for s in group for f in by[s].files]
        top = group[-1]
        merged = self._segments.read(old).cast(SCHEMAS[kind])
        los = [by[s].lo for s in group]
        his = [by[s].hi for s in group]
        lo = None if None in los else min(x for x in los if x is not None)
        hi = None if None in his else max(x for x in his if x is not None)
        files = self._segments.write(kind, top, merged, stem=f"merged-{self.seq()}")
        segs = {s: g for s, g in by.items() if s not in group}
        segs[top] = _Segment(merged.num_rows, lo, hi, tuple(files))
        self._exec("BEGIN TRANSACTION")
        try:
            self._exec(
                f"DELETE FROM segments WHERE kind = $k AND seq IN ({', '.join(map(str, group))})",
                {"k": kind},
            )
            self._record_segment(kind, top, segs)
            self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            self._segments.discard(files)
            self._forget()
            raise
        # the files merged last time: no read can still be using them
        self._segments.discard(self._retired)
        self._retired = old
        assert self._segs is not None
        self._segs[kind] = segs

    def _folded_upto(self) -> int:
        """The last batch every registered rollup has folded (all of them when none
        is registered)."""
        return min((done for _, _, done in self._load_defs()), default=self.seq())

    def _forget(self) -> None:
        """Drop what this writer remembers of the file, to read it again."""
        self._seq = None
        self._max_ts.clear()
        self._segs = None
        self._defs = None
        self._unfolded = self.refresh_rows

    def refresh(self) -> None:
        """Fold every stored event into the rollups now."""
        self._require_writable()
        with self._lock, self._fold_lock:
            if self._unfolded:
                self._exec("BEGIN TRANSACTION")
                try:
                    self._refresh_locked(upto=self.seq())
                    self._exec("COMMIT")
                except BaseException:
                    self._exec("ROLLBACK")
                    self._forget()
                    raise

    def register(self, defs: Iterable[CountDef]) -> list[str]:
        """Create rollups for definitions not seen before and fill them from all
        stored events. Returns the ids that were new."""
        self._require_writable()
        new = []
        with self._lock:
            known = {r[0] for r in self._exec("SELECT def_id FROM rollup_defs")}
            for d in defs:
                if d.id in known or d.id in new:
                    continue
                self._exec(
                    f"CREATE TABLE IF NOT EXISTS rollup_{d.id} (minute BIGINT, grp VARCHAR, "
                    "good DOUBLE, valid DOUBLE, aux DOUBLE, _seq BIGINT)"
                )
                self._exec(
                    "INSERT INTO rollup_defs VALUES ($id, $d, 0)",
                    {"id": d.id, "d": _encode(d)},
                )
                new.append(d.id)
            if new:
                self._defs = None
                self._unfolded = self.refresh_rows
        if new:
            self.refresh()
        return new

    def _load_defs(self) -> list[tuple[str, CountDef, int]]:
        if self._defs is None:
            self._defs = [
                (def_id, _decode(blob), int(done))
                for def_id, blob, done in self._exec(
                    "SELECT def_id, definition, seq FROM rollup_defs"
                )
            ]
        return self._defs

    def _refresh_locked(self, upto: int) -> None:
        defs = self._load_defs()
        behind = [(i, d, done) for i, d, done in defs if done < upto]
        # A rollup row is stamped with the last batch it counts, so a read "after batch
        # s" takes whole rows only if s is where one fold ended: fold in steps that end
        # at every batch a read has seen unfolded.
        ends = sorted({s for s in self._seen if s < upto} | {upto})
        for def_id, d, done in behind:
            after = done
            for end in ends:
                if end > after:
                    source = self._source(d.table, after, end)
                    sql = _aggregate_sql(d, after, end, seq_col=str(end), source=source)
                    self._exec(f"INSERT INTO rollup_{def_id} {sql}")
                    after = end
        self._seen = {s for s in self._seen if s > upto}
        if behind:
            self._exec("UPDATE rollup_defs SET seq = $s WHERE seq < $s", {"s": upto})
            self._defs = [(i, d, max(done, upto)) for i, d, done in defs]
        self._unfolded = 0

    def put_alerts(self, states: list[dict[str, Any]], log: list[dict[str, Any]]) -> None:
        """Replace the changed alerts' state rows and add their transitions to the
        history, in one transaction."""
        self._require_writable()
        with self._lock:
            self._exec("BEGIN TRANSACTION")
            try:
                for table, cols, rows, verb in (
                    ("alert_state", _ALERT_STATE_COLS, states, "INSERT OR REPLACE"),
                    ("alert_log", _ALERT_LOG_COLS, log, "INSERT"),
                ):
                    if rows:
                        self._insert_rows(table, cols, rows, verb)
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise

    def put_deliveries(self, records: list[dict[str, Any]]) -> None:
        self._require_writable()
        with self._lock:
            self._insert_rows("deliveries", _DELIVERY_COLS, records, "INSERT")

    def _insert_rows(self, table: str, cols: str, rows: list[dict[str, Any]], verb: str) -> None:
        names = [c.strip() for c in cols.split(",")]
        data = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in rows])
        self._con.register("_rows", data)
        try:
            self._exec(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _rows")
        finally:
            self._con.unregister("_rows")

    def alert_states(self) -> list[dict[str, Any]]:
        return self._rows(f"SELECT {_ALERT_STATE_COLS} FROM alert_state ORDER BY key")

    def alert_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest transitions, newest first."""
        return self._rows(
            f"SELECT {_ALERT_LOG_COLS} FROM alert_log ORDER BY ts DESC, key LIMIT {int(limit)}"
        )

    def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT {_DELIVERY_COLS} FROM deliveries ORDER BY finished_at DESC LIMIT {int(limit)}"
        )

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = self._cursor().sql(sql).to_arrow_table().to_pylist()
            return rows
        except duckdb.CatalogException:  # a read-only store from before alerting
            return []

    # -- reads -------------------------------------------------------------------

    def rollup(self, d: CountDef, lo: int, hi: int, *, since_seq: int = 0) -> Rollup:
        """Counts of `d` per minute and group for minutes in [lo, hi), from batches
        after `since_seq`. Counts not yet folded into the rollup (batches waiting for
        the next fold, a store written by an older slokit, or an unregistered
        definition) are computed from the raw events, so the answer is always current."""
        t, seq = self._rollup_table(self._cursor(), d, lo, hi, since_seq)
        if t is None:
            empty = np.zeros(0)
            return Rollup(
                empty.astype(np.int64), empty.astype(np.int32), [], empty, empty, empty, seq
            )
        codes = t.column("grp").combine_chunks().dictionary_encode()
        return Rollup(
            minute=t.column("minute").to_numpy().astype(np.int64),
            group=np.asarray(codes.indices.to_numpy(zero_copy_only=False), dtype=np.int32),
            groups=[str(g) for g in codes.dictionary.to_pylist()],
            good=t.column("good").to_numpy().astype(float),
            valid=t.column("valid").to_numpy().astype(float),
            aux=t.column("aux").to_numpy().astype(float),
            seq=seq,
        )

    def _rollup_table(
        self, cur: duckdb.DuckDBPyConnection, d: CountDef, lo: int, hi: int, since_seq: int
    ) -> tuple[pa.Table | None, int]:
        # one statement, one snapshot: both numbers from the same moment. The rollup
        # rows read stop at `done` and the raw events read stop at `seq`, so a refresh
        # committing meanwhile cannot make a row count twice.
        with self._fold_lock:  # a fold commits wholly before or after this read
            done, seq = cur.execute(
                "SELECT (SELECT seq FROM rollup_defs WHERE def_id = $id), "
                "(SELECT value FROM meta WHERE key = 'seq')",
                {"id": d.id},
            ).fetchall()[0]
            seq = int(seq)
            if done is not None and done < seq:
                # the caller may ask next for what came after `seq`: a later fold
                # must end a step there
                self._seen.add(seq)
        registered = done is not None
        done = min(int(done or 0), seq)
        parts = []
        if registered and done > since_seq:
            parts.append(
                f"SELECT minute, grp, good, valid, aux FROM rollup_{d.id} "
                f"WHERE _seq > {since_seq} AND _seq <= {done} AND minute >= {lo} AND minute < {hi}"
            )
        if seq > max(done, since_seq):
            after = max(done, since_seq)
            live = _aggregate_sql(
                d, after, seq, seq_col="0", source=self._source(d.table, after, seq)
            )
            parts.append(
                f"SELECT minute, grp, good, valid, aux FROM ({live}) "
                f"WHERE minute >= {lo} AND minute < {hi}"
            )
        if not parts:
            return None, seq
        sql = (
            "SELECT minute, grp, sum(good) AS good, sum(valid) AS valid, sum(aux) AS aux FROM ("
            + " UNION ALL ".join(parts)
            + ") GROUP BY minute, grp"
        )
        return cur.sql(sql).to_arrow_table(), seq

    def _source(self, table: str, after: int, upto: int) -> str:
        """What to read batches (after, upto] of `table` from: DuckDB's rows table when
        no segment holds one of them (a re-evaluation after a small append then skips
        the view's look at the segment directory), else the view."""
        kind = _KIND_OF.get(table)
        if kind is None or self._segments is None:
            return table
        seqs = self._segments.seqs(kind)
        if seqs is None or any(after < s <= upto for s in seqs):
            return table  # a store from before segments, or segments in the range
        return ROWS[kind]

    def annotations(self, service: str | None = None) -> pa.Table:
        where = "" if service is None else "WHERE service = $s"
        params = {} if service is None else {"s": service}
        cur = self._cursor()
        return cur.sql(
            f"SELECT * EXCLUDE (_seq) FROM annotations {where} ORDER BY ts", params=params
        ).to_arrow_table()

    def count(self, kind: str = "request") -> int:
        rows = self._cursor().execute(f"SELECT count(*) FROM {TABLES[kind]}").fetchall()
        return int(rows[0][0])

    def query(self, sql: str, params: dict[str, object] | None = None) -> pa.Table:
        """Read-only SQL over the store, for reports and tests."""
        return self._cursor().sql(sql, params=params or {}).to_arrow_table()


def _has_repeats(con: duckdb.DuckDBPyConnection, table: pa.Table) -> bool:
    """Whether an event_id occurs twice in `table`: exact, since equal ids hash
    equal; a shared hash only sends the batch down the slower exact path."""
    if table.num_rows < 2:
        return False
    if table.num_rows <= 65_536:
        return bool(pc.count_distinct(table.column("event_id")).as_py() < table.num_rows)
    # a hash per id, in parallel, and a sort: about 4x cheaper than counting strings
    ids = pa.Table.from_batches(table.select(["event_id"]).to_batches(max_chunksize=SCAN_ROWS))
    con.register("_ids", ids)
    try:
        hashes = np.sort(con.execute("SELECT hash(event_id) AS h FROM _ids").fetchnumpy()["h"])
    finally:
        con.unregister("_ids")
    return bool((hashes[1:] == hashes[:-1]).any())


def _aggregate_sql(d: CountDef, after: int, upto: int, *, seq_col: str, source: str) -> str:
    return (
        f"SELECT {MINUTE} AS minute, {d.group_sql} AS grp, sum({d.good})::DOUBLE AS good, "
        f"sum({d.valid})::DOUBLE AS valid, sum({d.aux})::DOUBLE AS aux, {seq_col} AS _seq "
        f"FROM {source} WHERE _seq > {after} AND _seq <= {upto} AND {d.where} "
        "GROUP BY ALL"
    )


def _encode(d: CountDef) -> str:
    import json
    from dataclasses import asdict

    return json.dumps(asdict(d), sort_keys=True)


def _decode(blob: str) -> CountDef:
    import json

    data = json.loads(blob)
    data["group_by"] = tuple(data["group_by"])
    return CountDef(**data)
