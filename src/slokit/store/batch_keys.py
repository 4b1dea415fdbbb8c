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
without a query that a key is new, their hashes in memory (about 6 MB); a hash that
matches is confirmed in the table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

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
        self._hashes: dict[int, int] | None = None  # hash -> keys; at the first keyed append
        self._order: deque[tuple[int, int]] = deque()  # (hash, seq), oldest first
        self._forgotten = 0

    def _load(self) -> dict[int, int]:
        if self._hashes is None:
            rows = self._exec(
                "SELECT kind, key, seq FROM batch_keys ORDER BY seq DESC LIMIT $n",
                {"n": self.limit},
            )
            self._order = deque((hash((k, key)), int(seq)) for k, key, seq in reversed(rows))
            self._hashes = {}
            for h, _ in self._order:
                self._hashes[h] = self._hashes.get(h, 0) + 1
        return self._hashes

    def find(self, kind: str, keys: Sequence[str | None]) -> dict[str, tuple[int, int]]:
        """The keys among `keys` already stored for `kind`: key -> (received, inserted)
        of the batch that first carried it."""
        hashes = self._load()
        maybe = sorted({k for k in keys if k is not None and hash((kind, k)) in hashes})
        if not maybe:
            return {}
        rows = self._exec(
            "SELECT key, received, inserted FROM batch_keys "
            "WHERE kind = $kind AND list_contains($keys, key)",
            {"kind": kind, "keys": maybe},
        )
        return {str(key): (int(r), int(i)) for key, r, i in rows}

    def add(self, kind: str, seq: int, batches: Sequence[tuple[str, int, int]]) -> None:
        """Record (key, received, inserted) of new batches, in the current transaction."""
        if not batches:
            return
        self._load()
        values = ", ".join(f"($kind, $k{i}, $r{i}, $i{i}, $seq)" for i in range(len(batches)))
        params: dict[str, object] = {"kind": kind, "seq": seq}
        for i, (key, received, inserted) in enumerate(batches):
            params.update({f"k{i}": key, f"r{i}": received, f"i{i}": inserted})
        self._exec(f"INSERT INTO batch_keys VALUES {values}", params)
        if self._forgotten >= _PRUNE_EVERY and self._order:
            self._exec("DELETE FROM batch_keys WHERE seq < $s", {"s": self._order[0][1]})
            self._forgotten = 0

    def committed(self, kind: str, seq: int, keys: Sequence[str]) -> None:
        """Remember the keys `add` recorded, once their transaction has committed."""
        hashes = self._load()
        for key in keys:
            h = hash((kind, key))
            hashes[h] = hashes.get(h, 0) + 1
            self._order.append((h, seq))
        while len(self._order) > self.limit:
            h, _ = self._order.popleft()
            left = hashes.pop(h) - 1
            if left:
                hashes[h] = left
            self._forgotten += 1
