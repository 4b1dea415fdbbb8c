"""The embedded event store: one DuckDB file, one owner.

Raw events land in `request_events`, `score_events` and `annotations`, each row
stamped with the ingest batch number `_seq`. For every registered count definition
(one per SLO, `slokit.store.definitions`) a per-minute rollup table `rollup_<id>`
holds good/valid counts per group; it only ever appends (every SLI is additive per
minute), and a definition remembers the last batch it has folded in, so keeping it
current reads only the new rows (DESIGN.md, storage rules).

All writes go through one lock on one connection; reads use their own cursors.
"""

from __future__ import annotations

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
from slokit.store.definitions import MINUTE, CountDef

TABLES = {"request": "request_events", "score": "score_events", "annotation": "annotations"}
SCHEMAS = {"request": REQUEST_EVENT, "score": SCORE_EVENT, "annotation": ANNOTATION}
DEFAULT_PATH = "slokit.duckdb"


@dataclass(frozen=True)
class AppendResult:
    received: int
    inserted: int

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
        self, path: str | Path = DEFAULT_PATH, *, read_only: bool = False, memory_limit: str = "1GB"
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
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
        self._lock = threading.RLock()
        if not read_only:
            self._create()

    # -- lifecycle ---------------------------------------------------------------

    def _create(self) -> None:
        with self._lock:
            for kind, table in TABLES.items():
                self._exec(_create_sql(table, SCHEMAS[kind]))
            self._exec("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)")
            self._exec("INSERT OR IGNORE INTO meta VALUES ('seq', 0)")
            self._exec(
                "CREATE TABLE IF NOT EXISTS rollup_defs (def_id VARCHAR PRIMARY KEY, "
                "definition VARCHAR, seq BIGINT)"
            )
            for sql in ALERT_TABLES:
                self._exec(sql)

    def close(self) -> None:
        with self._lock:
            self._con.close()

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
        rows = self._cursor().execute("SELECT value FROM meta WHERE key = 'seq'").fetchall()
        return int(rows[0][0]) if rows else 0

    def append(self, kind: str, table: pa.Table) -> AppendResult:
        """Insert validated records, skipping event_ids already stored (idempotent
        ingest), and fold them into every registered rollup, in one transaction."""
        return self.append_many(kind, [table])[0]

    def append_many(self, kind: str, tables: list[pa.Table]) -> list[AppendResult]:
        """`append` for several batches in one transaction (group commit), with each
        batch's own counts. An event_id repeated across batches is stored once, for
        the first batch that carries it."""
        self._require_writable()
        parts = [t.cast(SCHEMAS[kind]) for t in tables]
        sizes = [t.num_rows for t in parts]
        if sum(sizes) == 0:
            return [AppendResult(0, 0) for _ in parts]
        table = pa.concat_tables(parts)
        table = table.append_column(
            "_part", pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), sizes))
        )
        name = TABLES[kind]
        ts = table.column("ts")
        bounds = {"lo": pc.min(ts).as_py(), "hi": pc.max(ts).as_py()}
        new_rows = (
            f"FROM {{source}} b WHERE NOT EXISTS (SELECT 1 FROM {name} e "
            "WHERE e.ts BETWEEN $lo AND $hi AND e.event_id = b.event_id)"
        )
        with self._lock:
            con = self._con
            self._exec("BEGIN TRANSACTION")
            try:
                seq = int(self._exec("SELECT value FROM meta WHERE key = 'seq'")[0][0]) + 1
                con.register("_batch", table)
                repeats = table.num_rows - pc.count_distinct(table.column("event_id")).as_py()
                source = (
                    "(SELECT * FROM _batch QUALIFY row_number() OVER "
                    "(PARTITION BY event_id ORDER BY _part) = 1)"
                    if repeats
                    else "_batch"
                )
                rows = new_rows.format(source=source)
                inserted = [0] * len(parts)
                if len(parts) > 1:
                    for part, count in self._exec(
                        f"SELECT _part, count(*) {rows} GROUP BY _part", bounds
                    ):
                        inserted[part] = int(count)
                # DuckDB answers an INSERT with the number of rows it inserted
                done = self._exec(
                    f"INSERT INTO {name} SELECT b.* EXCLUDE (_part), {seq} {rows}", bounds
                )[0][0]
                con.unregister("_batch")
                if len(parts) == 1:
                    inserted[0] = int(done)
                self._exec("UPDATE meta SET value = $s WHERE key = 'seq'", {"s": seq})
                if kind != "annotation":
                    self._refresh_locked(upto=seq)
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise
        return [AppendResult(n, i) for n, i in zip(sizes, inserted, strict=True)]

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
                self._refresh_locked(upto=self.seq())
        return new

    def _refresh_locked(self, upto: int) -> None:
        rows = self._exec("SELECT def_id, definition, seq FROM rollup_defs")
        for def_id, blob, done in rows:
            if done >= upto:
                continue
            d = _decode(blob)
            self._exec(
                f"INSERT INTO rollup_{def_id} {_aggregate_sql(d, done, upto, seq_col=str(upto))}"
            )
            self._exec(
                "UPDATE rollup_defs SET seq = $s WHERE def_id = $id", {"s": upto, "id": def_id}
            )

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
        after `since_seq`. Counts not yet folded into the rollup (a read-only view of a
        store another process writes, or an unregistered definition) are computed from
        the raw events, so the answer is always current."""
        cur = self._cursor()
        seq = int(cur.execute("SELECT value FROM meta WHERE key = 'seq'").fetchall()[0][0])
        rows = cur.execute(
            "SELECT seq FROM rollup_defs WHERE def_id = $id", {"id": d.id}
        ).fetchall()
        row = rows[0] if rows else None
        done = int(row[0]) if row else 0
        parts = []
        if row is not None and done > since_seq:
            parts.append(
                f"SELECT minute, grp, good, valid, aux FROM rollup_{d.id} "
                f"WHERE _seq > {since_seq} AND minute >= {lo} AND minute < {hi}"
            )
        if seq > max(done, since_seq):
            live = _aggregate_sql(d, max(done, since_seq), seq, seq_col="0")
            parts.append(
                f"SELECT minute, grp, good, valid, aux FROM ({live}) "
                f"WHERE minute >= {lo} AND minute < {hi}"
            )
        if not parts:
            empty = np.zeros(0)
            return Rollup(
                empty.astype(np.int64), empty.astype(np.int32), [], empty, empty, empty, seq
            )
        sql = (
            "SELECT minute, grp, sum(good) AS good, sum(valid) AS valid, sum(aux) AS aux FROM ("
            + " UNION ALL ".join(parts)
            + ") GROUP BY minute, grp"
        )
        t = cur.sql(sql).to_arrow_table()
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


def _aggregate_sql(d: CountDef, after: int, upto: int, *, seq_col: str) -> str:
    return (
        f"SELECT {MINUTE} AS minute, {d.group_sql} AS grp, sum({d.good})::DOUBLE AS good, "
        f"sum({d.valid})::DOUBLE AS valid, sum({d.aux})::DOUBLE AS aux, {seq_col} AS _seq "
        f"FROM {d.table} WHERE _seq > {after} AND _seq <= {upto} AND {d.where} "
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
