"""Bulk ingest from JSONL, CSV and Parquet: bad records are reported with their line
and reason, good ones in the same file are kept, and re-ingesting does not double-count."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slokit.errors import InputError
from slokit.ingest import ingest_file
from slokit.store import DuckDBStore

GOOD = {"ts": "2026-11-01T12:00:00Z", "service": "chat", "outcome": "ok", "latency_ms": 120}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _line(**changes: object) -> str:
    rec = {**GOOD, **changes}
    return json.dumps({k: v for k, v in rec.items() if v is not None})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param(_line(ts=None), "missing `ts`", id="missing ts"),
        pytest.param(
            _line(latency_ms=-5),
            "`latency_ms` is negative (-5.0); must be >= 0",
            id="negative latency",
        ),
        pytest.param(
            _line(outcome="exploded"),
            "unknown `outcome` value 'exploded'; valid: ok, error, timeout, cancelled, shed, "
            "rate_limited, client_error",
            id="unknown outcome",
        ),
        pytest.param(
            _line(ts="yesterday"),
            "`ts` is not a timestamp ('yesterday'); use RFC 3339 like 2026-11-01T12:00:00Z or "
            "epoch seconds",
            id="unparseable timestamp",
        ),
        pytest.param(
            _line(input_tokens=1.5),
            "`input_tokens` must be a whole number, got 1.5",
            id="fractional tokens",
        ),
        pytest.param(
            _line(http_status=700),
            "`http_status` must be 100..599, got 700",
            id="impossible http status",
        ),
        pytest.param(
            "{not json",
            "not valid JSON (unexpected character, expected a string key at column 2)",
            id="malformed line",
        ),
        pytest.param("[1, 2]", "expected a JSON object, got list", id="not an object"),
    ],
)
def test_a_bad_jsonl_record_is_reported_and_the_rest_kept(
    store: DuckDBStore, tmp_path: Path, line: str, reason: str
) -> None:
    path = _jsonl(
        tmp_path / "events.jsonl",
        [_line(latency_ms=1), line, _line(latency_ms=3, ts="2026-11-01T12:00:01Z")],
    )
    report = ingest_file(store, path)
    assert (report.accepted, report.rejected) == (2, 1)
    assert [(r.line, r.reason) for r in report.rejections] == [(2, reason)]
    assert store.count() == 2


def test_reingesting_a_file_does_not_double_count(store: DuckDBStore, tmp_path: Path) -> None:
    # identical lines are distinct events; re-ingesting the file adds nothing
    path = _jsonl(tmp_path / "e.jsonl", [_line(), _line(), _line(event_id="abc")])
    first = ingest_file(store, path)
    again = ingest_file(store, path)
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert store.count() == 3


def test_csv_reports_rows_by_line_and_maps_extra_columns_to_attributes(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "ts,service,outcome,latency_ms,cold_start,attributes.region\n"
        "2026-11-01T12:00:00Z,chat,ok,100,false,eu\n"
        ",chat,ok,5,,\n"
        "2026-11-01T12:00:01Z,chat,ok,abc,true,\n"
        "2026-11-01T12:00:02Z,chat,error,7,maybe,us\n"
    )
    report = ingest_file(store, path)
    assert report.accepted == 1
    assert [(r.line, r.reason) for r in report.rejections] == [
        (3, "missing `ts`"),
        (4, "`latency_ms` must be a number, got 'abc'"),
        (5, "`cold_start` must be true or false, got 'maybe'"),
    ]
    row = store.query("SELECT attributes, cold_start FROM request_events").to_pylist()[0]
    assert row == {"attributes": [("region", "eu")], "cold_start": False}


def test_parquet_rows_are_numbered(store: DuckDBStore, tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([1762000000.0, None, 1762000002.0]),
            "service": ["chat", "chat", "chat"],
            "outcome": ["ok", "ok", "timeout"],
            "ttft_ms": [10.0, 20.0, -1.0],
        }
    )
    path = tmp_path / "e.parquet"
    pq.write_table(table, path)
    report = ingest_file(store, path)
    assert report.accepted == 1
    assert [(r.line, r.field) for r in report.rejections] == [(2, "ts"), (3, "ttft_ms")]


def test_parquet_rows_are_numbered_across_row_groups(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slokit.events import readers

    monkeypatch.setattr(readers, "PARQUET_ROWS", 4)  # row groups gathered 4 rows at a time
    n = 10
    table = pa.table(
        {
            "ts": pa.array([1762000000.0 + i for i in range(n)]),
            "service": ["chat"] * n,
            "outcome": ["ok"] * 6 + ["exploded"] + ["ok"] * 3,
            "latency_ms": [float(i) for i in range(n)],
        }
    )
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=3)
    report = ingest_file(store, path)
    assert (report.received, report.accepted) == (10, 9)
    assert [(r.line, r.field) for r in report.rejections] == [(7, "outcome")]


def test_outcome_is_derived_from_http_status_when_missing(
    store: DuckDBStore, tmp_path: Path
) -> None:
    lines = [
        _line(outcome=None, http_status=s, ts=f"2026-11-01T12:00:0{i}Z")
        for i, s in enumerate((200, 429, 404, 503, 504))
    ]
    ingest_file(store, _jsonl(tmp_path / "e.jsonl", lines))
    got = store.query("SELECT http_status, outcome FROM request_events ORDER BY ts").to_pylist()
    assert [r["outcome"] for r in got] == ["ok", "rate_limited", "client_error", "error", "timeout"]


def test_timestamps_in_several_forms_are_all_utc(store: DuckDBStore, tmp_path: Path) -> None:
    lines = [
        _line(ts=t, event_id=str(i))
        for i, t in enumerate(
            ("2026-11-01T13:00:00+01:00", "2026-11-01T12:00:00", 1793534400, "1793534400.5")
        )
    ]
    report = ingest_file(store, _jsonl(tmp_path / "e.jsonl", lines))
    assert report.rejected == 0
    got = store.query("SELECT epoch(ts) AS e FROM request_events ORDER BY event_id").to_pylist()
    assert [r["e"] for r in got] == [1793534400.0, 1793534400.0, 1793534400.0, 1793534400.5]


def test_format_is_chosen_by_extension_or_flag(store: DuckDBStore, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "events.log", [_line()])
    with pytest.raises(InputError, match=r"events.log: cannot tell the format .* pass --format"):
        ingest_file(store, path)
    assert ingest_file(store, path, fmt="jsonl").accepted == 1


def test_missing_service_is_filled_from_the_default(store: DuckDBStore, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "e.jsonl", [_line(service=None)])
    assert ingest_file(store, path).rejections[0].reason == "missing `service`"
    assert ingest_file(store, path, defaults={"service": "chat"}).accepted == 1


def test_a_large_jsonl_file_goes_through_blocks_with_one_bad_line(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slokit.events import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", 4096)  # many blocks
    lines = [_line(event_id=f"e{i}", latency_ms=i) for i in range(2000)]
    lines[1234] = "oops"
    report = ingest_file(store, _jsonl(tmp_path / "big.jsonl", lines))
    assert (report.accepted, report.rejected) == (1999, 1)
    assert report.rejections[0].line == 1235
    assert store.count() == 1999


def test_score_and_annotation_files(store: DuckDBStore, tmp_path: Path) -> None:
    scores = _jsonl(
        tmp_path / "s.jsonl",
        [
            json.dumps(
                {
                    "ts": "2026-11-01T12:00:00Z",
                    "service": "chat",
                    "name": "judge.x",
                    "value": 0.9,
                    "passed": True,
                    "source": "judge",
                }
            ),
            json.dumps(
                {
                    "ts": "2026-11-01T12:00:00Z",
                    "service": "chat",
                    "name": "judge.x",
                    "source": "robot",
                }
            ),
        ],
    )
    report = ingest_file(store, scores, kind="score")
    assert report.accepted == 1
    assert report.rejections[0].reason.startswith("unknown `source` value 'robot'")
    notes = _jsonl(
        tmp_path / "a.jsonl",
        [
            json.dumps(
                {
                    "ts": "2026-11-01T12:00:00Z",
                    "service": "chat",
                    "kind": "deploy",
                    "text": "v1.2.3",
                }
            )
        ],
    )
    assert ingest_file(store, notes, kind="annotation").accepted == 1
    assert store.annotations("chat").column("text").to_pylist() == ["v1.2.3"]


def test_a_repeated_event_id_within_one_file_is_stored_once(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "e.jsonl", [_line(event_id="x"), _line(event_id="x", latency_ms=9)])
    report = ingest_file(store, path)
    assert (report.accepted, report.duplicates) == (1, 1)
    assert store.count() == 1


def _count_fast_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per chunk that DuckDB's JSON reader (the fast path) yields."""
    from slokit.events import readers

    rows: list[int] = []
    fast = readers._duckdb_jsonl

    def spy(p: Path):  # type: ignore[no-untyped-def]
        for_caller = fast(p)
        try:
            while True:
                chunk = next(for_caller)
                rows.append(chunk.table.num_rows)
                yield chunk
        except StopIteration as stop:
            return stop.value

    monkeypatch.setattr(readers, "_duckdb_jsonl", spy)
    return rows


def _stored(store: DuckDBStore) -> list[dict[str, object]]:
    return store.query(
        "SELECT * EXCLUDE (_seq) FROM request_events ORDER BY ts, event_id"
    ).to_pylist()


def test_the_fast_jsonl_reader_stores_exactly_what_the_block_reader_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slokit.events import readers

    lines = [
        _line(
            ts=f"2026-11-01T12:{i // 60:02d}:{i % 60:02d}.5Z",
            latency_ms=i * 1.5,
            input_tokens=i,
            route=["chat", "rag"][i % 2],
            attributes={"prompt": f"p{i}", "n": i},
            region="eu" if i % 3 else None,
        )
        for i in range(300)
    ]
    lines[7] = lines[6]  # two identical records without event_id stay two events
    path = _jsonl(tmp_path / "e.jsonl", lines)
    fast_rows = _count_fast_rows(monkeypatch)
    with DuckDBStore(tmp_path / "fast.duckdb") as a:
        assert ingest_file(a, path).accepted == 300
        got_fast = _stored(a)
    assert sum(fast_rows) == 300

    def skipped(p: Path):  # type: ignore[no-untyped-def]
        return 0
        yield

    monkeypatch.setattr(readers, "_duckdb_jsonl", skipped)
    with DuckDBStore(tmp_path / "blocks.duckdb") as b:
        assert ingest_file(b, path).accepted == 300
        assert _stored(b) == got_fast


def test_a_late_bad_value_hands_the_rest_of_the_file_to_the_block_reader(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slokit.events import readers

    # DuckDB settles column types on the first 20,480 rows; a surprise after that
    # stops its reader mid-file, and the block reader goes on from the next line
    monkeypatch.setattr(readers, "BATCH_ROWS", 1000)
    lines = [_line(event_id=f"e{i}", latency_ms=i) for i in range(25_000)]
    lines[23_999] = _line(event_id="bad", latency_ms="slow")
    lines[24_499] = _line(event_id="late", latency_ms=1, gpu="h100")
    report = ingest_file(store, _jsonl(tmp_path / "big.jsonl", lines))
    assert (report.accepted, report.rejected) == (24_999, 1)
    assert [(r.line, r.field) for r in report.rejections] == [(24_000, "latency_ms")]
    assert store.count() == 24_999
    late = store.query("SELECT attributes FROM request_events WHERE event_id = 'late'")
    assert late.to_pylist() == [{"attributes": [("gpu", "h100")]}]


def test_a_blank_line_keeps_every_later_line_number(store: DuckDBStore, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "e.jsonl", [_line(), "", "  ", _line(latency_ms=-1)])
    report = ingest_file(store, path)
    assert [(r.line, r.field) for r in report.rejections] == [(4, "latency_ms")]


def test_the_block_reader_takes_over_at_the_line_after_the_fast_one_stopped(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slokit.events import readers

    # DuckDB may stop after it has handed over some rows (on a big file its error
    # comes mid-stream); here it stops after the first 1,000 lines
    monkeypatch.setattr(readers, "BLOCK_BYTES", 4096)  # the hand-over falls mid-block
    fast = readers._duckdb_jsonl

    def one_batch(p: Path):  # type: ignore[no-untyped-def]
        chunk = next(fast(p))
        yield readers.Chunk(chunk.table.slice(0, 1000), chunk.lines[:1000])
        return 1000

    monkeypatch.setattr(readers, "_duckdb_jsonl", one_batch)
    lines = [_line(event_id=f"e{i}", latency_ms=i) for i in range(3000)]
    lines[999] = _line(event_id="e999", latency_ms=-1)  # the fast reader's last line
    lines[1000] = _line(event_id="e1000", latency_ms=-1)  # the block reader's first
    report = ingest_file(store, _jsonl(tmp_path / "big.jsonl", lines))
    assert [r.line for r in report.rejections] == [1000, 1001]
    assert (report.received, report.accepted) == (3000, 2998)
    assert store.query("SELECT count(DISTINCT event_id) AS n FROM request_events").to_pylist() == [
        {"n": 2998}
    ]


def test_numbers_below_zero_nan_and_infinite_are_rejected_nulls_kept() -> None:
    from slokit.events.validate import validate

    n = float("nan")
    table = pa.table(
        {
            "ts": ["2026-11-01T12:00:00Z"] * 7,
            "service": ["chat"] * 7,
            "outcome": ["ok"] * 7,
            "latency_ms": [0.0, 1.5, -0.1, n, float("inf"), float("-inf"), None],
            "output_tokens": pa.array([0, -1, 3, None, 5, 6, 7], pa.int64()),
        }
    )

    checked = validate(table, lines=list(range(1, 8)))

    assert [(r.line, r.field) for r in checked.rejected] == [
        (2, "output_tokens"),
        (3, "latency_ms"),
        (4, "latency_ms"),
        (5, "latency_ms"),
        (6, "latency_ms"),
    ]
    assert checked.table.column("latency_ms").to_pylist() == [0.0, None]
