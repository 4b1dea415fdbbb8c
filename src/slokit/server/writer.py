"""The single writer of the event store inside `slokit serve`.

Every write is a job on one thread that owns the write path of the store, so HTTP
handlers never contend for the DuckDB write connection (datasette's pattern: one write
connection fed by a queue). A job's future resolves only after its transaction
commits, so a 2xx means the records are durable.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from slokit.store.duckdb_store import AppendResult, DuckDBStore


class StoreWriter:
    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slokit-writer")

    async def append(self, kind: str, table: pa.Table) -> AppendResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.store.append, kind, table)

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run any other write (registering rollups) on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
