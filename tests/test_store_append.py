"""The store's write path: idempotent appends (stored ids, repeats within a batch,
group commits), and rollups that fold new events in late while every read stays exact."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from slokit.events.schema import REQUEST_EVENT, SCORE_EVENT, TS
from slokit.events.validate import validate_records
from slokit.store import AppendResult, CountDef, DuckDBStore, batch_keys
from slokit.store.definitions import MINUTE

from conftest import T0, event

OK = CountDef(
    "request_events", "service = 'svc'", (), "CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END", "1"
)


def batch(ids: list[str], minute0: float = 0, *, step_s: float = 1.0) -> pa.Table:
    """Request events with these ids, one `step_s` apart from `minute0`."""
    n = len(ids)
    ts = pa.array([T0 + timedelta(minutes=minute0, seconds=i * step_s) for i in range(n)], TS)
    outcome = pa.array(["ok" if i % 4 else "error" for i in range(n)])
    cols = {f.name: pa.nulls(n, f.type) for f in REQUEST_EVENT}
    cols.update(event_id=pa.array(ids), ts=ts, service=pa.array(["svc"] * n), outcome=outcome)
    cols["latency_ms"] = pa.array(np.arange(n, dtype=float))
    return pa.table(cols, schema=REQUEST_EVENT)


def stored_ids(store: DuckDBStore) -> list[str]:
    return (
        store.query("SELECT event_id FROM request_events ORDER BY event_id").column(0).to_pylist()
    )


def totals(store: DuckDBStore, *, since_seq: int = 0) -> tuple[float, float]:
    r = store.rollup(OK, 0, 2**62, since_seq=since_seq)
    return float(r.good.sum()), float(r.valid.sum())


def raw_totals(store: DuckDBStore) -> tuple[float, float]:
    t = store.query("SELECT count(*) FILTER (outcome = 'ok'), count(*) FROM request_events")
    return float(t.column(0)[0].as_py()), float(t.column(1)[0].as_py())


def folded_rows(store: DuckDBStore) -> int:
    return int(store.query(f"SELECT count(*) FROM rollup_{OK.id}").column(0)[0].as_py())


def test_an_id_stored_by_an_earlier_process_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "e.duckdb"
    with DuckDBStore(path) as store:
        assert store.append("request", batch(["a", "b", "c"])) == AppendResult(3, 3)
    with DuckDBStore(path) as store:
        # same ids and times again, plus one new event inside the stored time range
        again = pa.concat_tables([batch(["a", "b", "c"]), batch(["d"], step_s=0.5)])
        assert store.append("request", again) == AppendResult(4, 1)
        assert stored_ids(store) == ["a", "b", "c", "d"]


def test_an_id_with_another_time_is_another_event(store: DuckDBStore) -> None:
    store.append("request", batch(["a"]))
    assert store.append("request", batch(["a"], minute0=5)) == AppendResult(1, 1)


def test_a_batch_later_than_everything_stored_is_stored_whole(store: DuckDBStore) -> None:
    store.append("request", batch(["a", "b"]))
    assert store.append("request", batch(["c", "d"], minute0=1)) == AppendResult(2, 2)
    assert stored_ids(store) == ["a", "b", "c", "d"]


def test_an_id_repeated_within_a_big_batch_is_stored_once_first_one_kept(
    store: DuckDBStore,
) -> None:
    n = 70_000  # above the size where repeats are found by hashing
    ids = [f"e{i}" for i in range(n)]
    ids[50_000] = "e7"
    ids[69_999] = "e7"
    t = batch(ids, step_s=0.01)
    assert store.append("request", t) == AppendResult(n, n - 2)
    kept = store.query("SELECT latency_ms FROM request_events WHERE event_id = 'e7'")
    assert kept.column(0).to_pylist() == [7.0]
    assert store.count() == n - 2


def test_a_group_commit_counts_each_batch_on_its_own(store: DuckDBStore) -> None:
    store.append("request", batch(["s1", "s2"]))
    results = store.append_many(
        "request",
        [
            batch(["a", "b"], minute0=1),
            batch(["b", "c", "c"], minute0=1),  # b: the first batch's; c twice
            batch(["s1", "d"]),  # s1: stored before
            batch([], minute0=2),
        ],
    )
    assert results == [
        AppendResult(2, 2),
        AppendResult(3, 1),
        AppendResult(2, 1),
        AppendResult(0, 0),
    ]
    assert stored_ids(store) == ["a", "b", "c", "d", "s1", "s2"]


def failed_append(store: DuckDBStore, table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    """Append `table` with the batch-number update failing ("disk full") just before
    the commit; the store works normally again afterwards."""
    real = store._exec

    def failing(sql: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
        if sql.startswith("UPDATE meta"):
            raise RuntimeError("disk full")
        return real(sql, params)

    monkeypatch.setattr(store, "_exec", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        store.append("request", table)
    monkeypatch.setattr(store, "_exec", real)


def test_a_failed_append_leaves_nothing_and_the_next_one_works(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append("request", batch(["a"]))
    failed_append(store, batch(["b"], minute0=1), monkeypatch)
    assert store.append("request", batch(["b", "c"], minute0=1)) == AppendResult(2, 2)
    assert stored_ids(store) == ["a", "b", "c"]
    assert store.seq() == 2


def test_a_batch_whose_key_is_stored_is_answered_as_first_and_not_stored_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.duckdb"
    with DuckDBStore(path) as store:
        store.append("request", batch(["s1"]))
        first = store.append("request", batch(["a", "b", "b"], minute0=1), key="k1")
        assert first == AppendResult(3, 2)
        # the same key for another kind is another batch
        score = {"event_id": "a:x", "ts": T0, "service": "svc", "name": "x", "value": 1.0}
        scores = pa.Table.from_pylist([score], schema=SCORE_EVENT)
        assert store.append("score", scores, key="k1") == AppendResult(1, 1)
    with DuckDBStore(path) as store:  # keys outlive the process
        again = store.append("request", batch(["a", "b", "b"], minute0=1), key="k1")
        assert again == AppendResult(3, 2, replayed=True)
        assert stored_ids(store) == ["a", "b", "s1"] and store.seq() == 3


def test_a_keyed_batch_is_checked_within_itself_not_against_the_store(
    store: DuckDBStore,
) -> None:
    """The key vouches that its ids are new (a gateway worker's are unique): the stored
    events are not probed, repeats inside the batch still are dropped."""
    store.append("request", batch(["a", "b"]))
    assert store.append("request", batch(["a", "c", "c"]), key="k") == AppendResult(3, 2)
    assert stored_ids(store) == ["a", "a", "b", "c"]
    # without a key the same batch is probed: nothing new
    assert store.append("request", batch(["a", "c"])) == AppendResult(2, 0)


def test_a_group_with_keyed_and_unkeyed_batches_probes_them_all(store: DuckDBStore) -> None:
    store.append("request", batch(["s1"]))
    results = store.append_many(
        "request",
        [batch(["s1", "a"]), batch(["b"], minute0=1), batch(["a", "c"]), batch(["b"], minute0=1)],
        ["k1", None, "k2", "k1"],  # the last: the first batch's key again
    )
    assert results == [
        AppendResult(2, 1),
        AppendResult(1, 1),
        AppendResult(2, 1),
        AppendResult(2, 1, replayed=True),
    ]
    assert stored_ids(store) == ["a", "b", "c", "s1"]


def test_a_failed_keyed_append_keeps_no_key(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed_append(store, batch(["a"]), monkeypatch)
    assert store.append("request", batch(["a"]), key="k") == AppendResult(1, 1)
    assert store.append("request", batch(["a"]), key="k") == AppendResult(1, 1, replayed=True)
    assert stored_ids(store) == ["a"]


def test_the_store_forgets_its_oldest_keys_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_keys, "_PRUNE_EVERY", 2)
    path = tmp_path / "e.duckdb"
    with DuckDBStore(path) as store:
        store._keys.limit = 3
        for i in range(6):
            store.append("request", batch([f"e{i}"], minute0=i), key=f"k{i}")
        kept = store.query("SELECT key FROM batch_keys ORDER BY seq").column(0).to_pylist()
        assert kept == ["k2", "k3", "k4", "k5"]  # pruned in steps of two forgotten keys
        assert store.append("request", batch(["e0"]), key="k0").replayed is False
        assert store.append("request", batch(["e5"], minute0=5), key="k5").replayed is True
    with DuckDBStore(path) as store:  # the newest keys are the ones loaded
        store._keys.limit = 2
        assert store.append("request", batch(["e3"], minute0=3), key="k3").replayed is False
        assert store.append("request", batch(["e0"]), key="k0").replayed is True


def test_rollups_fold_in_late_and_reads_stay_exact(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "e.duckdb", refresh_rows=1_000) as store:
        store.register([OK])
        for k in range(5):
            store.append("request", batch([f"{k}-{i}" for i in range(100)], minute0=k))
            assert totals(store) == raw_totals(store)
        assert folded_rows(store) == 0  # 500 waiting, below refresh_rows
        seen = store.rollup(OK, 0, 2**62).seq
        store.append("request", batch([f"5-{i}" for i in range(600)], minute0=5))
        assert folded_rows(store) > 0  # 1,100 waiting: folded in that commit
        assert totals(store) == raw_totals(store)
        # an incremental read from the seq seen before counts only the new batch
        assert totals(store, since_seq=seen) == (450.0, 600.0)
        store.append("request", batch(["late"], minute0=9))
    with DuckDBStore(tmp_path / "e.duckdb", read_only=True) as store:
        # closing folded the last batch in: the rollup alone holds every event
        assert (
            float(store.query(f"SELECT sum(valid) FROM rollup_{OK.id}").column(0)[0].as_py())
            == 1101
        )
        assert totals(store) == raw_totals(store)


def test_refresh_folds_everything_waiting(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "e.duckdb", refresh_rows=10**9) as store:
        store.register([OK])
        store.append("request", batch(["a", "b", "c", "d"]))
        assert folded_rows(store) == 0
        store.refresh()
        assert folded_rows(store) == 1
        minute = store.query(f"SELECT {MINUTE} AS m FROM request_events LIMIT 1").column(0)[0]
        r = store.rollup(OK, minute.as_py(), minute.as_py() + 1)
        assert (r.good.sum(), r.valid.sum()) == (3.0, 4.0)


def test_api_records_append_like_arrow_batches(store: DuckDBStore) -> None:
    checked = validate_records([event(0, event_id="x"), event(1), event(1)])
    assert store.append("request", checked.table) == AppendResult(3, 3)
    assert store.append("request", checked.table) == AppendResult(3, 0)
    assert (
        pc.count_distinct(store.query("SELECT event_id FROM request_events").column(0)).as_py() == 3
    )
