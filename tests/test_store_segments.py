"""Big appends stored as Parquet segments beside the DuckDB file: what reads see, ids
deduplicated across segments and DuckDB rows, rollups, crash leftovers, stores written
before segments, and read-only opens from elsewhere."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from slokit.errors import StoreError
from slokit.events.schema import REQUEST_EVENT, SCORE_EVENT, TS
from slokit.ingest import ingest_file
from slokit.store import AppendResult, DuckDBStore
from slokit.store.segments import copy_store, remove_store
from test_store_append import (
    OK,
    batch,
    failed_append,
    folded_rows,
    raw_totals,
    stored_ids,
    totals,
)

from conftest import T0


def segments_of(db: Path, kind: str = "request") -> list[str]:
    root = db.with_name(db.name + ".segments") / kind
    return sorted(p.name for p in root.iterdir() if p.name != "_seq=0")


def rows_in_duckdb_table(store: DuckDBStore) -> int:
    return int(store.query("SELECT count(*) FROM request_rows").column(0)[0].as_py())


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def test_a_big_append_becomes_a_segment_and_reads_see_it_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    table = batch(ids("a", 50))
    attrs = pa.array(
        [[("k", str(i))] if i % 3 else None for i in range(50)],
        REQUEST_EVENT.field("attributes").type,
    )
    table = table.set_column(REQUEST_EVENT.get_field_index("attributes"), "attributes", attrs)
    with DuckDBStore(db, segment_rows=10) as store:
        assert store.append("request", table) == AppendResult(50, 50)
        assert segments_of(db) == ["_seq=1"]
        assert rows_in_duckdb_table(store) == 0
        assert store.count() == 50
        back = store.query("SELECT * EXCLUDE (_seq) FROM request_events ORDER BY event_id")
        assert back.cast(REQUEST_EVENT).equals(table)
        seqs = store.query("SELECT DISTINCT _seq FROM request_events").column(0).to_pylist()
        assert seqs == [1]
        # a small append goes to DuckDB's table; reads see both
        assert store.append("request", batch(["z1", "z2"], minute0=5)) == AppendResult(2, 2)
        assert rows_in_duckdb_table(store) == 2
        assert store.count() == 52
        assert segments_of(db) == ["_seq=1"]


def test_ids_are_deduplicated_across_segments_and_rows(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "e.duckdb", segment_rows=10) as store:
        first = ids("a", 20)
        assert store.append("request", batch(first)) == AppendResult(20, 20)  # a segment
        # the same events again, small (rows) and big (a segment): nothing new
        assert store.append("request", batch(first[:5])) == AppendResult(5, 0)
        assert store.append("request", batch(first)) == AppendResult(20, 0)
        # rows first, then a segment that repeats some of them
        assert store.append("request", batch(["r1", "r2"], minute0=30)) == AppendResult(2, 2)
        again = batch(["r1", "r2", *ids("b", 10)], minute0=30)
        assert store.append("request", again) == AppendResult(12, 10)
        assert len(stored_ids(store)) == 32
        assert len(set(stored_ids(store))) == 32


def test_rollups_count_segments_as_they_count_rows(tmp_path: Path) -> None:
    appends = [batch(ids("a", 40)), batch(ids("b", 3), minute0=2), batch(ids("c", 25), minute0=3)]
    results = []
    for segment_rows in (10, 10**9):  # segments for the big ones, or none
        with DuckDBStore(
            tmp_path / f"s{segment_rows}.duckdb", segment_rows=segment_rows, refresh_rows=30
        ) as store:
            store.register([OK])
            for t in appends:
                store.append("request", t)
            store.refresh()
            assert folded_rows(store) > 0
            results.append((totals(store), raw_totals(store), totals(store, since_seq=1)))
    assert results[0] == results[1]
    assert results[0][0] == (30 + 2 + 18, 68.0)  # every 4th event, from the first, fails


def score_batch(event_ids: list[str]) -> pa.Table:
    """Check scores with these ids, one second apart from T0."""
    n = len(event_ids)
    return pa.table(
        {
            "event_id": pa.array(event_ids),
            "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], TS),
            "request_id": pa.array(ids("a", n)),
            "service": pa.array(["svc"] * n),
            "name": pa.array(["json_valid"] * n),
            "value": pa.array([1.0] * n),
            "passed": pa.array([i % 2 == 0 for i in range(n)]),
            "source": pa.array(["check"] * n),
            "comment": pa.nulls(n, pa.string()),
        },
        schema=SCORE_EVENT,
    )


def test_scores_become_segments_too(tmp_path: Path) -> None:
    n = 30
    scores = score_batch(ids("s", n))
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        assert store.append("score", scores) == AppendResult(n, n)
        assert segments_of(db, "score") == ["_seq=1"]
        assert store.count("score") == n
        assert store.append("score", scores) == AppendResult(n, 0)


def test_a_failed_commit_removes_its_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
        failed_append(store, batch(ids("b", 20), minute0=5), monkeypatch)
        assert segments_of(db) == ["_seq=1"]
        assert store.count() == 20
        assert store.append("request", batch(ids("b", 20), minute0=5)) == AppendResult(20, 20)
        assert segments_of(db) == ["_seq=1", "_seq=2"]
        assert store.count() == 40


def test_a_crash_leftover_is_removed_when_the_writer_opens(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
    root = db.with_name(db.name + ".segments") / "request"
    # a segment written but never committed (batch 2), and a half-written file
    shutil.copytree(root / "_seq=1", root / "_seq=2")
    (root / "_seq=1" / "part-9.parquet.part").write_bytes(b"half a file")
    with DuckDBStore(db, read_only=True) as reader:
        assert reader.count() == 20  # the view lists committed segments only
    with DuckDBStore(db, segment_rows=10) as store:
        assert segments_of(db) == ["_seq=1"]
        assert not list((root / "_seq=1").glob("*.part"))
        assert store.count() == 20
        assert store.append("request", batch(ids("b", 20), minute0=5)) == AppendResult(20, 20)
        assert store.count() == 40


def test_a_store_written_before_segments_is_carried_over(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    cols = ", ".join(
        f'"{f.name}" '
        + (
            "TIMESTAMPTZ"
            if f.name == "ts"
            else "MAP(VARCHAR, VARCHAR)"
            if f.name == "attributes"
            else {
                "string": "VARCHAR",
                "int32": "INTEGER",
                "int64": "BIGINT",
                "double": "DOUBLE",
                "bool": "BOOLEAN",
            }[str(f.type)]
        )
        for f in REQUEST_EVENT
    )
    con.execute(f"CREATE TABLE request_events ({cols}, _seq BIGINT NOT NULL)")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value BIGINT)")
    con.execute("INSERT INTO meta VALUES ('seq', 1)")
    con.execute(
        "CREATE TABLE rollup_defs (def_id VARCHAR PRIMARY KEY, definition VARCHAR, seq BIGINT)"
    )
    con.register("b", batch(["old1", "old2"]))
    con.execute("INSERT INTO request_events SELECT *, 1 FROM b")
    con.close()
    with DuckDBStore(db, read_only=True) as reader:  # read as it is, before any writer
        assert stored_ids(reader) == ["old1", "old2"]
        assert totals(reader) == (1.0, 2.0)
    with DuckDBStore(db, segment_rows=10) as store:
        assert stored_ids(store) == ["old1", "old2"]
        assert store.append("request", batch(["old1", *ids("n", 15)])) == AppendResult(16, 15)
        assert store.count() == 17
    con = duckdb.connect(str(db), read_only=True)
    kinds = dict(
        con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall()
    )
    con.close()
    assert kinds["request_events"] == "VIEW" and kinds["request_rows"] == "BASE TABLE"


def test_a_read_only_open_finds_the_segments_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "a" / "e.duckdb"
    db.parent.mkdir()
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
    # the file and its segments moved together, read from another working directory
    moved = tmp_path / "b"
    shutil.move(db.parent, moved)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with DuckDBStore(moved / "e.duckdb", read_only=True) as reader:
        assert reader.count() == 20
        assert len(stored_ids(reader)) == 20


def test_remove_store_removes_file_log_and_segments(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
    remove_store(db)
    assert os.listdir(tmp_path) == []
    with DuckDBStore(db) as store:  # and a new store there starts empty
        assert store.count() == 0


def test_ingest_appends_in_the_background_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    import slokit.events.readers
    import slokit.ingest

    monkeypatch.setattr(slokit.ingest, "APPEND_ROWS", 25)
    monkeypatch.setattr(slokit.events.readers, "PARQUET_ROWS", 30)
    table = batch(ids("a", 100))
    # the second half repeats ten ids of the first: found across appends
    table = pa.concat_tables([table, batch(ids("a", 10)), batch(ids("b", 40), minute0=9)])
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=30)
    with DuckDBStore(tmp_path / "e.duckdb", segment_rows=20) as store:
        report = ingest_file(store, path)
        assert (report.received, report.accepted, report.duplicates) == (150, 140, 10)
        assert store.count() == 140
        assert store.seq() >= 4


def test_an_append_failing_in_the_background_fails_the_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(batch(ids("a", 10)), path)
    with DuckDBStore(tmp_path / "e.duckdb") as store:

        def broken(kind: str, table: pa.Table) -> AppendResult:
            raise RuntimeError("disk full")

        monkeypatch.setattr(store, "append", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            ingest_file(store, path)


def test_a_file_moved_without_its_segments_is_refused_with_the_fix(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
    alone = tmp_path / "alone" / "e.duckdb"
    alone.parent.mkdir()
    shutil.copyfile(db, alone)
    for read_only in (True, False):
        with pytest.raises(StoreError, match=r"1 of its 1 Parquet segments are missing.*copy both"):
            DuckDBStore(alone, read_only=read_only)
    # copied as a store, it is whole
    copy = tmp_path / "copy" / "e.duckdb"
    copy.parent.mkdir()
    copy_store(db, copy)
    with DuckDBStore(copy, segment_rows=10) as store:
        assert store.count() == 20
        store.append("request", batch(ids("b", 20), minute0=5))
    with DuckDBStore(db, read_only=True) as original:  # the copy's writes stay in the copy
        assert original.count() == 20


def segment_files(db: Path, kind: str = "request") -> list[str]:
    root = db.with_name(db.name + ".segments") / kind
    return sorted(
        f"{p.parent.name}/{p.name}" for p in root.glob("*/*.parquet") if p.parent.name != "_seq=0"
    )


def small_appends(n: int, size: int = 12) -> list[pa.Table]:
    return [batch(ids(f"k{i}-", size), minute0=2 * i) for i in range(n)]


def test_small_segments_are_merged_and_reads_stay_the_same(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    appends = small_appends(9)
    with DuckDBStore(db, segment_rows=10, compact_at=4, compact_rows=1000) as store:
        for t in appends[:3]:
            store.append("request", t)
        assert segment_files(db) == [f"_seq={i}/part-0.parquet" for i in (1, 2, 3)]
        store.append("request", appends[3])  # the fourth small one: all four merge
        assert store.query("SELECT seq, rows FROM segments").to_pylist() == [{"seq": 4, "rows": 48}]
        assert store.count() == 48
        for t in appends[4:]:
            store.append("request", t)
        assert store.count() == 9 * 12
        assert sorted(stored_ids(store)) == sorted(
            i for t in appends for i in t["event_id"].to_pylist()
        )
        seqs = store.query("SELECT _seq, count(*) AS n FROM request_events GROUP BY 1 ORDER BY 1")
        # the merge at batch 7 took the first merge's result and batches 5-7
        assert seqs.to_pylist() == [
            {"_seq": 7, "n": 84},
            {"_seq": 8, "n": 12},
            {"_seq": 9, "n": 12},
        ]
        # what a merge retires stays until the next merge, then goes
        files = segment_files(db)
        assert "_seq=7/merged-7-0.parquet" in files and "_seq=4/merged-4-0.parquet" in files
        assert "_seq=1/part-0.parquet" not in files
        # an id already stored in a merged segment is still found by the dedupe probe
        assert store.append("request", appends[2]) == AppendResult(12, 0)
    # closing removed what the last merge retired; reopening finds everything
    assert segment_files(db) == [
        "_seq=7/merged-7-0.parquet",
        "_seq=8/part-0.parquet",
        "_seq=9/part-0.parquet",
    ]
    with DuckDBStore(db, segment_rows=10, compact_at=4, compact_rows=1000) as store:
        assert store.count() == 9 * 12
    with DuckDBStore(db, read_only=True) as reader:
        assert reader.count() == 9 * 12


def test_only_batches_every_rollup_has_folded_are_merged(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    appends = small_appends(6)
    with DuckDBStore(
        db, segment_rows=10, compact_at=3, compact_rows=1000, refresh_rows=10**9
    ) as store:
        store.register([OK])
        for t in appends[:2]:
            store.append("request", t)
        first = store.rollup(OK, 0, 2**62)  # as the evaluator reads: all, then what is new
        assert (first.seq, float(first.valid.sum())) == (2, 24.0)
        for t in appends[2:4]:
            store.append("request", t)
        assert len(segment_files(db)) == 4  # nothing folded yet: nothing merged
        store.refresh()  # batches 1-4 folded
        store.append("request", appends[4])
        assert store.query("SELECT seq FROM segments ORDER BY seq").column(0).to_pylist() == [4, 5]
        assert totals(store, since_seq=first.seq) == (27.0, 36.0)  # batches 3-5, once each
        store.append("request", appends[5])
        store.refresh()
        assert totals(store) == raw_totals(store) == (6 * 9.0, 6 * 12.0)


def test_a_merge_cut_short_by_a_crash_leaves_the_segments_as_they_were(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10, compact_at=100) as store:
        for t in small_appends(3):
            store.append("request", t)
    seg3 = db.with_name(db.name + ".segments") / "request" / "_seq=3"
    # a merged file written but never committed
    shutil.copyfile(seg3 / "part-0.parquet", seg3 / "merged-3-0.parquet")
    with DuckDBStore(db, read_only=True) as reader:
        assert reader.count() == 36  # the view lists committed files only
    with DuckDBStore(db, segment_rows=10, compact_at=100) as store:
        assert segment_files(db) == [f"_seq={i}/part-0.parquet" for i in (1, 2, 3)]
        assert store.count() == 36


def test_a_store_whose_segments_were_not_listed_lists_them_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
    con = duckdb.connect(str(db))  # as an older slokit left it: no file list
    con.execute("UPDATE segments SET files = NULL")
    con.close()
    with DuckDBStore(db, segment_rows=10) as store:
        assert store.query("SELECT files FROM segments").column(0).to_pylist() == [
            "e.duckdb.segments/request/_seq=1/part-0.parquet"
        ]
        assert store.count() == 20


def test_segments_on_disk_that_no_record_names_are_adopted_not_removed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10) as store:
        store.append("request", batch(ids("a", 20)))
        store.append("request", batch(ids("b", 3)))  # DuckDB rows
        store.append("score", score_batch(ids("s", 12)))
    con = duckdb.connect(str(db))  # as a development build left it: nothing recorded
    con.execute("DELETE FROM segments")
    con.close()
    with DuckDBStore(db, segment_rows=10) as store:
        assert store.count() == 23 and store.count("score") == 12
        recorded = store.query("SELECT kind, seq, rows FROM segments ORDER BY seq")
        assert recorded.to_pylist() == [
            {"kind": "request", "seq": 1, "rows": 20},
            {"kind": "score", "seq": 3, "rows": 12},
        ]
        store.append("request", batch(ids("a", 20)))  # repeats are still recognised
        assert store.count() == 23
    assert len(segment_files(db)) == 1


def test_a_failed_merge_fails_no_append_and_keeps_the_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db, segment_rows=10, compact_at=2, compact_rows=1000) as store:
        assert store._segments is not None

        def broken(files: object) -> pa.Table:
            raise OSError("disk full")

        monkeypatch.setattr(store._segments, "read", broken)
        for t in small_appends(3):
            assert store.append("request", t) == AppendResult(12, 12)
        assert segment_files(db) == [f"_seq={i}/part-0.parquet" for i in (1, 2, 3)]
        assert store.count() == 36
        monkeypatch.undo()
        store.append("request", small_appends(4)[3])  # merging works again
        assert store.query("SELECT seq FROM segments").column(0).to_pylist() == [4]
        assert store.count() == 48
