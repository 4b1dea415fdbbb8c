"""Turn loosely typed input columns into schema-conforming Arrow tables.

Every reader (JSONL, CSV, Parquet, the HTTP API, OTLP) ends here. The checks are
vectorised over whole columns; only rows that fail are looked at one by one, to word
their `Rejection`. Good rows of a batch are always kept.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.events.schema import (
    ANNOTATION,
    ANNOTATION_KINDS,
    ATTRIBUTES,
    OUTCOMES,
    REQUEST_EVENT,
    SCORE_EVENT,
    SCORE_SOURCES,
    TS,
)

NON_NEGATIVE = (
    "latency_ms",
    "ttft_ms",
    "tpot_ms",
    "itl_max_ms",
    "queue_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)
ENUMS: dict[str, tuple[str, ...]] = {
    "outcome": OUTCOMES,
    "source": SCORE_SOURCES,
    "kind": ANNOTATION_KINDS,
}
MAP_FIELD = {"request": "attributes", "score": None, "annotation": "labels"}
SCHEMA_OF = {"request": REQUEST_EVENT, "score": SCORE_EVENT, "annotation": ANNOTATION}


@dataclass(frozen=True)
class Rejection:
    """One input record that was not accepted, and why."""

    index: int  # 0-based position in the batch as given
    line: int | None  # 1-based line (JSONL) or row (CSV, Parquet) in the source, if known
    field: str | None
    reason: str

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"record {self.index}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class Validated:
    table: pa.Table
    rejected: list[Rejection] = field(default_factory=list)


class _Problems:
    """Collects per-row reasons as boolean masks; words them only for failing rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: list[tuple[str, np.ndarray, Any]] = []

    def add(self, name: str, mask: np.ndarray, reason: Any) -> None:
        if mask.any():
            self.items.append((name, mask, reason))

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for _, mask, _ in self.items:
            out |= mask
        return out

    def rejections(self, lines: np.ndarray | None) -> list[Rejection]:
        per_row: dict[int, list[tuple[str, str]]] = {}
        for name, mask, reason in self.items:
            for row in np.flatnonzero(mask).tolist():
                text = reason(row) if callable(reason) else reason
                per_row.setdefault(row, []).append((name, text))
        out = []
        for row in sorted(per_row):
            reasons = per_row[row]
            line = int(lines[row]) if lines is not None else None
            out.append(Rejection(row, line, reasons[0][0], "; ".join(r for _, r in reasons)))
        return out


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    # most batches are clean: one reduction answers, instead of a filled copy
    if not pc.any(arr).as_py():
        return np.zeros(len(arr), dtype=bool)
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _negative_or_not_finite(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows whose number is below 0, NaN or infinite; nulls are not flagged. One numpy
    pass over the column (a 1,000-row batch took 190 us a column in four Arrow calls)."""
    col = _one_chunk(arr)
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)  # null: NaN
    with np.errstate(invalid="ignore"):
        bad: np.ndarray = ~(values >= 0)
    if pa.types.is_floating(col.type):
        bad |= np.isinf(values)
    if col.null_count:
        bad &= ~_null_mask(col)
    return bad


def _null_mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if not arr.null_count:
        return np.zeros(len(arr), dtype=bool)
    return _mask(pc.is_null(arr))


def _one_chunk(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def _parse_ts_scalar(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (ValueError, OverflowError, OSError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _to_timestamps(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Timestamps from timestamp, numeric (epoch seconds) or ISO 8601 columns.

    Returns the converted column and a mask of values present but unparseable.
    """
    col = _one_chunk(col)
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.assume_timezone(col, "UTC")
        return col.cast(TS), np.zeros(len(col), dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        us = pc.multiply(col.cast(pa.float64()), 1e6)
        return pc.cast(pc.round(us), pa.int64()).cast(TS), np.zeros(len(col), dtype=bool)
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(TS), np.zeros(len(col), dtype=bool)
    text = col.cast(pa.string())
    try:
        return text.cast(TS), np.zeros(len(col), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = [_parse_ts_scalar(v) for v in text.to_pylist()]
    bad = np.array(
        [v is None and raw is not None for v, raw in zip(values, text.to_pylist(), strict=True)],
        dtype=bool,
    )
    return pa.array(values, type=TS), bad


def _to_type(col: pa.ChunkedArray, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast `col` to `target`; values that do not cast become null and are flagged."""
    col = _one_chunk(col)
    if col.type == target:
        return col, np.zeros(len(col), dtype=bool)
    if pa.types.is_boolean(target) and (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    ):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        truthy = pc.is_in(lowered, pa.array(["true", "1", "yes", "t"]))
        falsy = pc.is_in(lowered, pa.array(["false", "0", "no", "f", ""]))
        out = pc.if_else(truthy, True, pc.if_else(falsy, False, None))
        bad = _mask(pc.and_(pc.invert(pc.or_(truthy, falsy)), pc.is_valid(col)))
        return out.cast(pa.bool_()), bad
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), target), np.zeros(len(col), dtype=bool)
    try:
        if pa.types.is_integer(target) and pa.types.is_floating(col.type):
            whole = pc.equal(pc.floor(col), col)
            bad = _mask(pc.invert(whole))
            return pc.if_else(whole, col, None).cast(target), bad
        return col.cast(target), np.zeros(len(col), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Slow path, only for columns that hold at least one bad value.
    py = col.to_pylist()
    values: list[Any] = []
    bad_list: list[bool] = []
    for v in py:
        try:
            values.append(pa.scalar(v).cast(target).as_py() if v is not None else None)
            bad_list.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            values.append(None)
            bad_list.append(True)
    return pa.array(values, type=target), np.array(bad_list, dtype=bool)


def _as_text(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    col = _one_chunk(col)
    if pa.types.is_struct(col.type) or pa.types.is_list(col.type) or pa.types.is_map(col.type):
        return pa.array([None if v is None else _text(v) for v in col.to_pylist()], pa.string())
    return col if pa.types.is_string(col.type) else col.cast(pa.string())


def _pairs_to_map(columns: list[tuple[str, pa.Array]], n: int) -> pa.Array:
    """Row i of the map holds (name, value) for every column whose value is not null."""
    k = len(columns)
    order = np.arange(k * n).reshape(k, n).T.ravel()  # column-major -> row-major
    values = pa.concat_arrays([c for _, c in columns]).take(pa.array(order))
    key_idx = np.repeat(np.arange(k), n)[order]
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    counts = valid.reshape(n, k).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    keys = pa.array([name for name, _ in columns], pa.string()).take(pa.array(key_idx[valid]))
    return pa.MapArray.from_arrays(
        pa.array(offsets),
        keys,
        values.filter(pa.array(valid)),
        type=ATTRIBUTES,
        mask=pa.array(counts == 0),
    )


def _map_pairs(base: pa.ChunkedArray) -> list[list[tuple[str, str]]]:
    rows: list[list[tuple[str, str]]] = []
    for v in base.to_pylist():
        items = v.items() if isinstance(v, dict) else (v or [])
        rows.append([(str(k), _text(val)) for k, val in items if val is not None])
    return rows


def _attributes(table: pa.Table, known: set[str], map_field: str) -> pa.Array:
    """Collect `attributes` (an object or a map) and unknown columns into a string map,
    column by column."""
    n = table.num_rows
    extra = [c for c in table.column_names if c not in known]
    base = table.column(map_field) if map_field in table.column_names else None
    if base is None and not extra:
        return pa.nulls(n, ATTRIBUTES)
    columns: list[tuple[str, pa.Array]] = []
    if base is not None and pa.types.is_struct(base.type):
        flat = base.combine_chunks()
        columns += [
            (base.type.field(j).name, _as_text(flat.field(j))) for j in range(base.type.num_fields)
        ]
    elif base is not None and pa.types.is_map(base.type):
        if not extra:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return base.combine_chunks().cast(ATTRIBUTES)
        # a map beside extra columns (rare): merge row by row
        rows = _map_pairs(base)
        for name in extra:
            key = name.removeprefix(f"{map_field}.")
            for row, v in zip(rows, _as_text(table.column(name)).to_pylist(), strict=True):
                if v is not None:
                    row.append((key, v))
        return pa.array([r or None for r in rows], ATTRIBUTES)
    columns += [(c.removeprefix(f"{map_field}."), _as_text(table.column(c))) for c in extra]
    if not columns:
        return pa.nulls(n, ATTRIBUTES)
    return _pairs_to_map(columns, n)


def _derive_outcome(status: pa.Array) -> pa.Array:
    """Outcome from an HTTP status when the record has none (2xx ok, 429, 4xx, 5xx)."""
    return pc.case_when(
        pc.make_struct(
            pc.less(status, 400),
            pc.equal(status, 429),
            pc.equal(status, 408),
            pc.less(status, 500),
            pc.equal(status, 504),
        ),
        "ok",
        "rate_limited",
        "timeout",
        "client_error",
        "timeout",
        "error",
    )


_local = threading.local()


def _scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB per thread, for vectorised hashing."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def content_ids(table: pa.Table, lines: np.ndarray | None = None) -> pa.Array:
    """Deterministic ids from record content, so re-ingesting a file dedupes.

    Identical records must stay distinct events, so the id also takes the record's
    line in its file, or, for API batches, its occurrence number among identical
    records of the batch."""
    cols = [c for c in table.column_names if c != "event_id"]
    parts = ", ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '\\N')" for c in cols)
    data = (
        table.select(cols)
        .append_column(
            "__salt", pa.array(lines if lines is not None else np.zeros(table.num_rows, np.int64))
        )
        .append_column("__pos", pa.array(np.arange(table.num_rows)))
    )
    con = _scratch()
    con.register("_content", data)
    try:
        if lines is not None:
            sql = f"SELECT md5(concat_ws(chr(31), {parts}, 'line', __salt)) FROM _content"
        else:
            sql = (
                f"SELECT CASE WHEN k = 0 THEN h ELSE md5(h || '#' || k) END FROM ("
                f"SELECT __pos, h, row_number() OVER (PARTITION BY h ORDER BY __pos) - 1 AS k "
                f"FROM (SELECT __pos, md5(concat_ws(chr(31), {parts})) AS h FROM _content)) "
                "ORDER BY __pos"
            )
        ids = con.sql(sql).to_arrow_table()
    finally:
        con.unregister("_content")
    return ids.column(0).combine_chunks().cast(pa.string())


def validate(
    table: pa.Table,
    kind: str = "request",
    *,
    lines: Sequence[int] | np.ndarray | None = None,
    defaults: dict[str, Any] | None = None,
) -> Validated:
    """Validate and coerce `table` to the schema of `kind` (request, score, annotation).

    `lines` gives each row's line or row number in its source, for messages.
    `defaults` fills fields that are missing or null (for example `service`).
    """
    schema = SCHEMA_OF[kind]
    n = table.num_rows
    line_arr = np.asarray(lines) if lines is not None else None
    problems = _Problems(n)
    defaults = defaults or {}
    map_field = MAP_FIELD[kind]
    known = set(schema.names)
    columns: dict[str, pa.Array] = {}
    given = {name: i for i, name in enumerate(table.column_names)}  # built once: 30 us a call

    for f in schema:
        name = f.name
        if name == map_field:
            continue
        if name in given:
            raw = table.column(given[name])
            if f.type == TS:
                col, unparseable = _to_timestamps(raw)
                problems.add(
                    name,
                    unparseable,
                    lambda i, raw=raw, name=name: (
                        f"`{name}` is not a timestamp ({raw[i].as_py()!r}); use RFC 3339 "
                        "like 2026-11-01T12:00:00Z or epoch seconds"
                    ),
                )
            else:
                col, bad_type = _to_type(raw, f.type)
                problems.add(
                    name,
                    bad_type,
                    lambda i, raw=raw, name=name, t=f.type: (
                        f"`{name}` must be {_type_word(t)}, got {raw[i].as_py()!r}"
                    ),
                )
        else:
            col = pa.nulls(n, f.type)
        if name in defaults and defaults[name] is not None:
            col = pc.fill_null(col, pa.scalar(defaults[name], f.type))
        columns[name] = col

    if kind == "request":
        outcome = columns["outcome"]
        if outcome.null_count and columns["http_status"].null_count < n:
            outcome = pc.coalesce(outcome, _derive_outcome(columns["http_status"]))
        columns["outcome"] = pc.utf8_lower(outcome)
        status = columns["http_status"]
        problems.add(
            "http_status",
            _mask(pc.or_(pc.less(status, 100), pc.greater(status, 599))),
            lambda i: f"`http_status` must be 100..599, got {status[i].as_py()}",
        )
    for name, allowed in ENUMS.items():
        if name in columns:
            col = columns[name]
            present = pc.is_valid(col)
            bad = _mask(pc.and_(present, pc.invert(pc.is_in(col, pa.array(allowed)))))
            problems.add(
                name,
                bad,
                lambda i, col=col, name=name, allowed=allowed: (
                    f"unknown `{name}` value {col[i].as_py()!r}; valid: {', '.join(allowed)}"
                ),
            )
    for name in NON_NEGATIVE:
        if name in columns:
            col = columns[name]
            bad = _negative_or_not_finite(col)
            problems.add(
                name,
                bad,
                lambda i, col=col, name=name: (
                    f"`{name}` is negative ({col[i].as_py()}); must be >= 0"
                ),
            )
    for f in schema:
        if not f.nullable and f.name != "event_id":
            missing = _null_mask(columns[f.name])
            already = np.zeros(n, dtype=bool)
            for name, mask, _ in problems.items:
                if name == f.name:
                    already |= mask
            problems.add(f.name, missing & ~already, f"missing `{f.name}`")

    if map_field is not None:
        columns[map_field] = _attributes(table, known, map_field)

    ordered = pa.table([columns[f.name] for f in schema], names=schema.names)
    bad = problems.bad()
    rejected = problems.rejections(line_arr)
    if bad.any():
        ordered = ordered.filter(pa.array(~bad))
    ids = ordered.column("event_id")
    if ids.null_count:
        kept_lines = None if line_arr is None else line_arr[~bad]
        generated = content_ids(ordered, kept_lines)
        ordered = ordered.set_column(0, "event_id", pc.coalesce(ids, generated))
    return Validated(ordered.cast(schema), rejected)


def _type_word(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "a whole number"
    if pa.types.is_floating(t):
        return "a number"
    if pa.types.is_boolean(t):
        return "true or false"
    return "text"


def validate_records(
    records: Sequence[Any], kind: str = "request", *, defaults: dict[str, Any] | None = None
) -> Validated:
    """Validate a list of parsed JSON values (objects expected) from an API body."""
    good_idx: list[int] = []
    rows: list[dict[str, Any]] = []
    pre: list[Rejection] = []
    for i, rec in enumerate(records):
        if isinstance(rec, dict):
            good_idx.append(i)
            rows.append(rec)
        else:
            pre.append(
                Rejection(i, None, None, f"expected a JSON object, got {type(rec).__name__}")
            )
    table = rows_to_table(rows, kind)
    out = validate(table, kind, defaults=defaults)
    remapped = [Rejection(good_idx[r.index], None, r.field, r.reason) for r in out.rejected]
    out.rejected = sorted(pre + remapped, key=lambda r: r.index)
    return out


def rows_to_table(rows: list[dict[str, Any]], kind: str) -> pa.Table:
    """Build a loosely typed table from dicts: each column keeps its values as given,
    falling back to text when a column mixes types, so validation can word problems."""
    names: dict[str, None] = {}
    for row in rows:
        for k in row:
            names.setdefault(k, None)
    map_field = MAP_FIELD[kind]
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name == map_field:
            values = [
                [(str(k), None if v is None else str(v)) for k, v in val.items()]
                if isinstance(val, dict)
                else None
                for val in values
            ]
            cols[name] = pa.array(values, ATTRIBUTES)
            continue
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            cols[name] = pa.array([None if v is None else _text(v) for v in values], pa.string())
        if pa.types.is_struct(cols[name].type) or pa.types.is_list(cols[name].type):
            cols[name] = pa.array([None if v is None else _text(v) for v in values], pa.string())
    if not cols:
        return pa.table({"event_id": pa.nulls(len(rows), pa.string())})
    return pa.table(cols)


def _text(v: Any) -> str:
    if isinstance(v, (dict, list)):
        import orjson

        return orjson.dumps(v).decode()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
