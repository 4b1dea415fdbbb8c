"""The single writer of the event store inside `slokit serve`.

Every write is a job for one thread that owns the write path of the store, so HTTP
handlers never contend for the DuckDB write connection (datasette's pattern: one write
connection fed by a queue). Batches that queue up while a write runs are committed
together in the next transaction (group commit), each still answered with its own
counts. A job's future resolves only after its transaction commits, so a 2xx means
the records are durable.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from slokit.store.duckdb_store import AppendResult, DuckDBStore

GROUP_ROWS = 200_000  # most rows one group commit gathers


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    kind: str = ""
    table: pa.Table | None = None
    key: str | None = None  # the batch's idempotency key
    call: Callable[[], Any] | None = None

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        def done() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(done)


class StoreWriter:
    def __init__(self, store: DuckDBStore, group_rows: int = GROUP_ROWS) -> None:
        self.store = store
        self.group_rows = group_rows
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slokit-writer", daemon=True)
        self._thread.start()

    async def append(self, kind: str, table: pa.Table, key: str | None = None) -> AppendResult:
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), kind=kind, table=table, key=key)
        self._queue.put(job)
        result: AppendResult = await job.future
        return result

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run any other write (registering rollups) on the writer thread."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), call=lambda: fn(*args))
        self._queue.put(job)
        return await job.future

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.call is not None:
                self._do_call(job)
                continue
            group, rows, stop, other = [job], _rows(job), False, None
            while rows < self.group_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if nxt.call is not None or nxt.kind != job.kind:
                    other = nxt
                    break
                group.append(nxt)
                rows += _rows(nxt)
            self._do_group(group)
            if other is not None:
                if other.call is not None:
                    self._do_call(other)
                else:
                    self._do_group([other])
            if stop:
                return

    def _do_call(self, job: _Job) -> None:
        assert job.call is not None
        try:
            job.resolve(job.call())
        except Exception as exc:
            job.resolve(error=exc)

    def _do_group(self, group: list[_Job]) -> None:
        try:
            tables = [j.table for j in group if j.table is not None]
            keys = [j.key for j in group if j.table is not None]
            results = self.store.append_many(group[0].kind, tables, keys)
        except Exception as exc:
            for j in group:
                j.resolve(error=exc)
            return
        for j, r in zip(group, results, strict=True):
            j.resolve(r)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _rows(job: _Job) -> int:
    return job.table.num_rows if job.table is not None else 0
