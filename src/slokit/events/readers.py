"""Read JSONL, CSV and Parquet files as loosely typed Arrow chunks, each row with its
line (JSONL, CSV) or row (Parquet) number, for `slokit.events.validate`.

JSONL goes first through DuckDB's parallel JSON reader (about 3x faster than pyarrow's
here). A file DuckDB cannot read row for line (a malformed line, a blank line, a key
that appears only late in the file, a column of mixed types) goes, from the first row
not yet read, through pyarrow's JSON reader a block at a time; a block that pyarrow
cannot read either is re-read line by line, so one bad line costs some speed and loses
nothing else.
"""

from __future__ import annotations

import functools
import io
import mmap
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from slokit.errors import InputError
from slokit.events.schema import SCHEMAS, TS
from slokit.events.validate import MAP_FIELD, Rejection, rows_to_table

FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BLOCK_BYTES = 32 << 20
BATCH_ROWS = 1 << 18
PARQUET_ROWS = 1 << 20
# two patterns, not one with an alternation: a literal first byte keeps `re` fast
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r]*\n")


@dataclass
class Chunk:
    table: pa.Table  # raw columns, as read
    lines: np.ndarray  # 1-based line or row number of each row
    rejected: list[Rejection] = field(default_factory=list)  # rows unreadable as records
    done_bytes: int = 0  # progress through the file


def detect_format(path: str | Path, given: str | None = None) -> str:
    if given:
        if given not in FORMATS:
            raise InputError(f"unknown format {given!r}; use one of {', '.join(FORMATS)}")
        return given
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        raise InputError(f"{path}: compressed files are not read yet; decompress it first")
    fmt = _EXTENSIONS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise InputError(
            f"{path}: cannot tell the format from the extension; pass --format "
            f"({', '.join(FORMATS)})"
        )
    return fmt


def read(path: str | Path, fmt: str | None = None, kind: str = "request") -> Iterator[Chunk]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    fmt = detect_format(p, fmt)
    if fmt == "jsonl":
        yield from _read_jsonl(p, kind)
    elif fmt == "csv":
        yield from _read_csv(p)
    else:
        yield from _read_parquet(p)


def _blocks(p: Path) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines and the file offset after each."""
    with p.open("rb") as fh:
        rest = b""
        while True:
            data = fh.read(BLOCK_BYTES)
            if not data:
                if rest:
                    yield rest, fh.tell()
                return
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            yield data[: cut + 1], fh.tell() - len(rest)


def _read_jsonl(p: Path, kind: str) -> Iterator[Chunk]:
    done = yield from _duckdb_jsonl(p)
    if done is None:
        return
    for chunk in _block_jsonl(p, kind):
        if done and chunk.lines[-1] <= done:
            continue
        if done and chunk.lines[0] <= done:
            keep = chunk.lines > done
            chunk = Chunk(
                chunk.table.filter(pa.array(keep)),
                chunk.lines[keep],
                [r for r in chunk.rejected if (r.line or 0) > done],
                chunk.done_bytes,
            )
        yield chunk


def _duckdb_jsonl(p: Path) -> Generator[Chunk, None, int | None]:
    """The file through DuckDB's JSON reader, while it can read it row for line.
    Returns None when it read the whole file, else the number of lines it yielded:
    the caller reads on from the next one."""
    size = p.stat().st_size
    line = 1
    if size == 0:
        return None
    with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        # DuckDB skips blank lines, which would shift every later line number
        if _BLANK_FIRST_LINE.match(mm) or _BLANK_LINE.search(mm):
            return 0
        head = mm[: 1 << 20]
    line_bytes = len(head) / max(head.count(b"\n"), 1)
    con = duckdb.connect()
    try:
        rel = con.sql(
            "SELECT * FROM read_json($path, format = 'newline_delimited', records = true)",
            params={"path": str(p)},
        )
        # a column of mixed types comes back as JSON text ("x" with its quotes)
        if any("JSON" in str(t) for t in rel.types):
            return 0
        reader = rel.to_arrow_reader(BATCH_ROWS)
        batches: list[pa.RecordBatch] = []
        while True:
            try:
                batch: pa.RecordBatch | None = reader.read_next_batch()
            except StopIteration:
                batch = None
            except (duckdb.Error, pa.ArrowException, OSError):
                # DuckDB's error, through the Arrow stream: a value or key its
                # sample did not foresee
                return line - 1
            if batch is not None and batch.num_rows:
                batches.append(batch)
            held = sum(b.num_rows for b in batches)
            # DuckDB hands out small batches; validating bigger ones costs less
            if batches and (batch is None or held >= BATCH_ROWS):
                yield Chunk(
                    pa.Table.from_batches(batches),
                    np.arange(line, line + held),
                    done_bytes=min(size, int((line - 1 + held) * line_bytes)),
                )
                line += held
                batches = []
            if batch is None:
                break
    except duckdb.Error:
        return line - 1
    finally:
        con.close()
    return None


def _block_jsonl(p: Path, kind: str) -> Iterator[Chunk]:
    line = 1
    for block, offset in _blocks(p):
        n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        fast = read_ndjson_block(block, n_lines, kind)
        if fast is not None:
            yield Chunk(fast, np.arange(line, line + n_lines), done_bytes=offset)
        else:
            yield _slow_jsonl(block, line, kind, offset)
        line += n_lines


def read_ndjson_block(block: bytes, n_lines: int, kind: str | None = None) -> pa.Table | None:
    """A block of whole NDJSON lines as a table, or None when pyarrow cannot read it
    row for line (blank lines, a malformed line, a column of mixed types).

    With `kind`, the schema's own column types are tried first: no type inference,
    about 1.5x faster. A value of another type (an epoch-seconds `ts`, a quoted
    number) fails that read, and the block is read again with inference."""
    if b"\n\n" in block or block.startswith(b"\n") or b"\r" in block:
        return None
    tries = [pajson.ParseOptions()]
    if kind is not None:
        tries.insert(0, _parse_options(kind))
    for options in tries:
        try:
            table = pajson.read_json(
                io.BytesIO(block),
                # threads pay off on file blocks, not on one API request's body
                read_options=_READ_THREADS if len(block) > 4 << 20 else _READ,
                parse_options=options,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return table if table.num_rows == n_lines else None
    return None


_READ = pajson.ReadOptions(block_size=4 << 20, use_threads=False)
_READ_THREADS = pajson.ReadOptions(block_size=4 << 20)


@functools.cache
def _parse_options(kind: str) -> pajson.ParseOptions:
    # ts stays text: validation parses every timestamp form the same way
    fields = [
        pa.field(f.name, pa.string() if f.type == TS else f.type)
        for f in SCHEMAS[kind]
        if f.name != MAP_FIELD[kind]
    ]
    return pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="infer")


def _slow_jsonl(block: bytes, first_line: int, kind: str, offset: int) -> Chunk:
    rows: list[dict[str, object]] = []
    lines: list[int] = []
    rejected: list[Rejection] = []
    for i, raw in enumerate(block.split(b"\n")):
        number = first_line + i
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            rejected.append(
                Rejection(-1, number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            )
            continue
        if not isinstance(value, dict):
            rejected.append(
                Rejection(-1, number, None, f"expected a JSON object, got {type(value).__name__}")
            )
            continue
        rows.append(value)
        lines.append(number)
    return Chunk(rows_to_table(rows, kind), np.asarray(lines, dtype=np.int64), rejected, offset)


def _read_csv(p: Path) -> Iterator[Chunk]:
    with p.open("rb") as fh:
        header = fh.readline().decode("utf-8-sig").strip()
    if not header:
        raise InputError(f"{p}: empty CSV file; the first line must name the columns")
    columns = pacsv.read_csv(io.BytesIO(header.encode() + b"\n")).column_names
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        strings_can_be_null=True,
        null_values=[""],
    )
    try:
        reader = pacsv.open_csv(
            p, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES), convert_options=convert
        )
        line = 2
        for batch in reader:
            table = pa.Table.from_batches([batch])
            yield Chunk(table, np.arange(line, line + table.num_rows))
            line += table.num_rows
    except pa.ArrowInvalid as exc:
        raise InputError(f"{p}: not a readable CSV file: {exc}") from exc


def _read_parquet(p: Path) -> Iterator[Chunk]:
    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p}: not a readable Parquet file: {exc}") from exc
    row = 1
    total = max(pf.metadata.num_rows, 1)
    size = p.stat().st_size
    for table in _parquet_tables(pf):
        yield Chunk(
            table,
            np.arange(row, row + table.num_rows),
            done_bytes=int(size * (row - 1 + table.num_rows) / total),
        )
        row += table.num_rows


def _parquet_tables(pf: pq.ParquetFile) -> Iterator[pa.Table]:
    """Whole row groups, gathered to about PARQUET_ROWS, each read with a thread per
    column (iter_batches decodes on one thread: about 2x slower here). A row group too
    big to hold at once is read in batches instead."""
    meta = pf.metadata
    group: list[int] = []
    rows = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if n > 4 * PARQUET_ROWS:
            if group:
                yield pf.read_row_groups(group, use_threads=True)
                group, rows = [], 0
            for batch in pf.iter_batches(batch_size=PARQUET_ROWS, row_groups=[i]):
                yield pa.Table.from_batches([batch])
            continue
        group.append(i)
        rows += n
        if rows >= PARQUET_ROWS:
            yield pf.read_row_groups(group, use_threads=True)
            group, rows = [], 0
    if group:
        yield pf.read_row_groups(group, use_threads=True)
