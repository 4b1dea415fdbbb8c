"""Idempotency keys of ingest batches.

A client that mints its own unique event_ids (a gateway worker) names each batch it
sends with a key and, when a delivery fails, sends the same batch again under the same
key. The store records the key in the batch's transaction and answers a batch whose key
it holds with the first answer, storing nothing. A keyed batch's events are checked for
repeats among themselves, but not probed against the stored events: with two gateway
workers, whose deliveries' time spans overlap, that probe was about a third of the
store's CPU (docs/concepts.md, "Ingest and idempotency").

The store remembers the newest `LIMIT` keys (about a day and a half of a two-worker
gateway's deliveries, one per kind every 5 s) in the `batch_keys` table and, to decide
without a query that a key is new, their hashes in memory (1.6 MB with the batch
numbers; a scan of them takes about 60 us); a hash that matches is confirmed in the
table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LIMIT = 100_000
MAX_LENGTH = 255
TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS batch_keys "
    "(kind VARCHAR, key VARCHAR, received BIGINT, inserted BIGINT, seq BIGINT)"
)
_PRUNE_EVERY = 5_000  # forgotten keys between two deletes of their rows

Exec = Callable[[str, dict[str, object] | None], list[tuple[Any, ...]]]


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an idempotency key, or None."""
    if not key:
        return "it is empty"
    if len(key) > MAX_LENGTH:
        return f"it is {len(key)} characters long; the most is {MAX_LENGTH}"
    if not (key.isascii() and key.isprintable()):
        return "it has characters other than printable ASCII"
    return None


class BatchKeys:
    """The keys of committed batches, for the store's single writer: `find` and `add`
    inside the append's transaction, `committed` after it commits."""

    def __init__(self, execute: Exec, limit: int = LIMIT) -> None:
        self._exec = execute
        self.limit = limit
        # a ring of the newest keys' hashes and batch numbers, filled at the first keyed
        # append; `_next` is where the next key goes (in a full ring: the oldest)
        self._hashes: np.ndarray | None = None
        self._seqs = np.zeros(0, dtype=np.int64)
        self._size = self._next = 0
        self._forgotten = 0

    def _load(self) -> np.ndarray:
        if self._hashes is None:
            self._hashes = np.zeros(self.limit, dtype=np.int64)
            self._seqs = np.zeros(self.limit, dtype=np.int64)
            rows = self._exec(
                "SELECT kind, key, seq FROM batch_keys ORDER BY seq DESC LIMIT $n",
                {"n": self.limit},
            )
            for kind, key, seq in reversed(rows):
                self._remember(hash((kind, key)), int(seq))
            self._forgotten = 0
        return self._hashes

    def _remember(self, h: int, seq: int) -> None:
        assert self._hashes is not None
        self._hashes[self._next], self._seqs[self._next] = h, seq
        self._next = (self._next + 1) % self.limit
        if self._size < self.limit:
            self._size += 1
        else:
            self._forgotten += 1

    def find(self, kind: str, keys: Sequence[str | None]) -> dict[str, tuple[int, int]]:
        """The keys among `keys` already stored for `kind`: key -> (received, inserted)
        of the batch that first carried it."""
        live = self._load()[: self._size]
        maybe = sorted({k for k in keys if k is not None and bool((live == hash((kind, k))).any())})
        if not maybe:
            return {}
        rows = self._exec(
            "SELECT key, received, inserted FROM batch_keys "
            "WHERE kind = $kind AND list_contains($keys, key)",
            {"kind": kind, "keys": maybe},
        )
        return {str(key): (int(r), int(i)) for key, r, i in rows}

    def add(self, kind: str, seq: int, batches: Sequence[tuple[str, int, int]]) -> None:
        """Record (key, received, inserted) of new batches, in the current transaction,
        and delete the rows of keys forgotten since the last delete."""
        if not batches:
            return
        self._load()
        values = ", ".join(f"($kind, $k{i}, $r{i}, $i{i}, $seq)" for i in range(len(batches)))
        params: dict[str, object] = {"kind": kind, "seq": seq}
        for i, (key, received, inserted) in enumerate(batches):
            params.update({f"k{i}": key, f"r{i}": received, f"i{i}": inserted})
        self._exec(f"INSERT INTO batch_keys VALUES {values}", params)
        if self._forgotten >= _PRUNE_EVERY:
            oldest = int(self._seqs[self._next if self._size == self.limit else 0])
            self._exec("DELETE FROM batch_keys WHERE seq < $s", {"s": oldest})
            self._forgotten = 0

    def committed(self, kind: str, seq: int, keys: Sequence[str]) -> None:
        """Remember the keys `add` recorded, once their transaction has committed."""
        self._load()
        for key in keys:
            self._remember(hash((kind, key)), seq)
