"""Event delivery off the request path: the gateway adds each RequestEvent and
ScoreEvent to a bounded buffer and a background task delivers them in batches, either
to the store writer of the same process (`slokit serve --gateway`, or a one-worker
`slokit gateway`) or to the ingest API of a `slokit serve` (`events.url`, and every
worker of a multi-worker gateway). Delivery retries with backoff; when the buffer is
full the newest events are dropped and counted (`slokit_gateway_events_dropped_total`).
A user's request never waits on telemetry.

Two cadences, chosen by measurement (bench/gateway_throughput.py, gateway_latency.py):
records become Arrow tables every `interval_s` (0.1 s: each conversion is short, so
requests arriving meanwhile barely wait for the interpreter lock), and the tables are
delivered every `deliver_interval_s` (5 s) or once `batch` (20,000) events of a kind are
ready. Big deliveries are cheap to store: with two workers at about 5,300 requests/s the
store took 0.23 cores with a delivery a second and 0.13 with one every 5 s (fewer HTTP
posts, commits and dedupe probes). A gateway's check results are held compact, one entry
per answer (`add_checks`), and become ScoreEvents column by column.

Each delivery carries an idempotency key (`slokit.store.batch_keys`), and a failed one is
sent again exactly, under the same key: a delivery whose answer was lost after the store
committed it is not stored twice, and the store need not probe the stored events for
the gateway's ids, which are unique by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.events.schema import ARROW_STREAM, SCHEMAS

log = logging.getLogger("slokit.gateway")

# deliver(kind, table, key): `key` names the batch; a retry sends the same batch and key
Deliver = Callable[[str, pa.Table, str], Awaitable[None]]
# one answer's quality checks: (request event_id, ts, service, [(check name, passed)])
Checks = tuple[str, float, str, list[tuple[str, bool]]]
KINDS = ("request", "score")
_US = 1_000_000


def to_table(records: list[dict[str, Any]], kind: str) -> pa.Table:
    """The gateway's own records, already well-formed, straight into the store schema
    (`ts` is epoch seconds; `attributes` a dict of strings)."""
    schema = SCHEMAS[kind]
    cols: list[pa.Array] = []
    for f in schema:
        name = f.name
        if name == "ts":  # through numpy: a third of the time of int() on each
            secs = np.fromiter([r["ts"] for r in records], np.float64, len(records))
            cols.append(pa.array((secs * _US).astype(np.int64)).cast(f.type))
        elif pa.types.is_map(f.type):
            cols.append(
                pa.array([list(r[name].items()) if r.get(name) else None for r in records], f.type)
            )
        else:
            cols.append(pa.array([r.get(name) for r in records], f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def checks_table(items: list[Checks]) -> pa.Table:
    """Check results as ScoreEvents, one per (answer, check), built column by column:
    `event_id` is the request's id and the check's name joined by `:`, `value` 1.0 or
    0.0, `source` `check` (1.7-2.5 us an answer for its three checks, against about 8.5
    us to build three records and pass them through `to_table`)."""
    schema = SCHEMAS["score"]
    counts = np.fromiter((len(i[3]) for i in items), np.int64, len(items))
    pick = pa.array(np.repeat(np.arange(len(items), dtype=np.int64), counts))
    request_id = pa.array([i[0] for i in items], pa.string()).take(pick)
    names = pa.array([name for i in items for name, _ in i[3]], pa.string())
    passed = pa.array([ok for i in items for _, ok in i[3]], pa.bool_())
    ts = pa.array([int(i[1] * _US) for i in items], pa.int64()).take(pick)
    n = len(names)
    cols = [
        pc.binary_join_element_wise(request_id, names, ":"),
        ts.cast(schema.field("ts").type),
        request_id,
        pa.array([i[2] for i in items], pa.string()).take(pick),
        names,
        passed.cast(pa.float64()),
        passed,
        pa.repeat(pa.scalar("check", pa.string()), n),
        pa.nulls(n, pa.string()),
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def arrow_stream(table: pa.Table) -> bytes:
    """`table` as an Arrow IPC stream, the body form of the ingest API that costs
    neither side a JSON encode or parse (a request's record takes 4-9 us through
    `to_table` and its check scores about 2 us through `checks_table`, against 24 us to
    encode a request and its three scores as JSON; the server reads the stream without
    a parse)."""
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, table.schema) as w:
        w.write_table(table)
    return bytes(out.getvalue())


def _salvage(
    convert: Callable[..., pa.Table], entries: list[Any], *rest: Any
) -> tuple[pa.Table | None, int, str]:
    """`convert` of the entries that convert on their own: (table or None, entries left
    out, the first one's error with its event id)."""
    good: list[Any] = []
    error = ""
    for e in entries:
        try:
            convert([e], *rest)
        except Exception as exc:
            if not error:
                eid = e.get("event_id") if isinstance(e, dict) else e[0]
                error = f"event {eid}: {type(exc).__name__}: {exc}"
            continue
        good.append(e)
    return (convert(good, *rest) if good else None), len(entries) - len(good), error


class EventSink:
    def __init__(
        self,
        deliver: Deliver,
        batch: int = 20_000,
        interval_s: float = 0.1,
        buffer: int = 500_000,
        max_backoff_s: float = 10.0,
        deliver_interval_s: float = 5.0,
        enabled: bool = True,
    ) -> None:
        self.deliver = deliver
        self.enabled = enabled  # off: every event is discarded (`events.enabled: false`)
        self.batch = batch  # most events of one kind in one delivery
        self.interval_s = interval_s
        self.deliver_interval_s = deliver_interval_s
        self.buffer = buffer
        self.max_backoff_s = max_backoff_s
        self._queues: dict[str, deque[dict[str, Any]]] = {k: deque() for k in KINDS}
        self._checks: deque[Checks] = deque()  # score events, compact (`add_checks`)
        self._check_rows = 0
        self._ready: dict[str, list[pa.Table]] = {k: [] for k in KINDS}  # converted
        self._ready_rows = dict.fromkeys(KINDS, 0)
        # the part of each kind being delivered, with its key, until it is stored
        self._unsent: dict[str, tuple[str, pa.Table]] = {}
        self._key_prefix = f"gw-{os.urandom(8).hex()}-"
        self._parts = itertools.count(1)
        self.dropped = dict.fromkeys(KINDS, 0)
        self.delivered = dict.fromkeys(KINDS, 0)
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, kind: str, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._held(kind) >= self.buffer:
            self.dropped[kind] += 1
            return
        self._queues[kind].append(record)

    def add_checks(
        self, request_id: str, ts: float, service: str, results: list[tuple[str, bool]]
    ) -> None:
        """One answer's check results, each a ScoreEvent (see `checks_table`)."""
        if not self.enabled or not results:
            return
        if self._held("score") + len(results) > self.buffer:
            self.dropped["score"] += len(results)
            return
        self._checks.append((request_id, ts, service, results))
        self._check_rows += len(results)

    def _held(self, kind: str) -> int:
        held = len(self._queues[kind]) + self._ready_rows[kind]
        return held + self._check_rows if kind == "score" else held

    def pending(self) -> int:
        queued = sum(len(q) for q in self._queues.values()) + self._check_rows
        return queued + sum(self._ready_rows.values())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Convert every `interval_s`; deliver every `deliver_interval_s`, or sooner
        when `batch` events of a kind are ready, or at once when closing."""
        backoff = 0.2
        shipped = time.monotonic()
        while True:
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self._convert()
            now = time.monotonic()
            full = any(n >= self.batch for n in self._ready_rows.values())
            if not (self._closing or full or now - shipped >= self.deliver_interval_s):
                continue
            if await self._deliver_ready():
                backoff, shipped = 0.2, now
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            if self._closing and not self.pending():
                return

    async def _convert(self) -> None:
        """The records queued now, as Arrow tables (off the event loop: a few hundred
        records take about a millisecond)."""
        for kind, q in self._queues.items():
            n = len(q)
            if n:
                records = [q.popleft() for _ in range(n)]
                await self._convert_one(kind, n, to_table, records, kind)
        if self._checks:
            items = [self._checks.popleft() for _ in range(len(self._checks))]
            n, self._check_rows = self._check_rows, 0
            await self._convert_one("score", n, checks_table, items)

    async def _convert_one(
        self, kind: str, n: int, convert: Callable[..., pa.Table], *args: Any
    ) -> None:
        try:
            table = await asyncio.to_thread(convert, *args)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad value (an upstream's odd answer): keep the others
            table, bad, error = await asyncio.to_thread(_salvage, convert, *args)
            lost = n - (table.num_rows if table is not None else 0)
            log.warning(
                "dropped %d of %d %s events that could not be stored (%d bad entries; the "
                "first: %s)",
                lost,
                n,
                kind,
                bad,
                error,
            )
            self.dropped[kind] += lost
            if table is None:
                return
            n = table.num_rows
        self._ready[kind].append(table)
        self._ready_rows[kind] += n

    async def _deliver_ready(self) -> bool:
        for kind, tables in self._ready.items():
            while tables or kind in self._unsent:
                if kind not in self._unsent:
                    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                    rest = table.slice(self.batch)
                    tables[:] = [rest] if rest.num_rows else []
                    key = f"{self._key_prefix}{next(self._parts)}"
                    self._unsent[kind] = (key, table.slice(0, self.batch))
                key, part = self._unsent[kind]
                try:
                    await self.deliver(kind, part, key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failures += 1
                    log.warning("event delivery failed (%s); will retry: %s", kind, exc)
                    return False
                del self._unsent[kind]
                self._ready_rows[kind] -= part.num_rows
                self.delivered[kind] += part.num_rows
        return True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is buffered (up to `timeout_s`), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.warning("gave up delivering %d buffered events", self.pending())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def writer_delivery(writer: Any) -> Deliver:
    """Deliver into a `StoreWriter` of this process."""

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        await writer.append(kind, table, key)

    return deliver


def http_delivery(session: Any, url: str, token: str | None) -> Deliver:
    """Deliver to the ingest API of a `slokit serve` (`/v1/events`, `/v1/scores`), as
    Arrow IPC streams."""
    import aiohttp

    headers = {"content-type": ARROW_STREAM}
    if token:
        headers["authorization"] = f"Bearer {token}"
    paths = {"request": "/v1/events", "score": "/v1/scores"}
    timeout = aiohttp.ClientTimeout(total=30)

    async def deliver(kind: str, table: pa.Table, key: str) -> None:
        body = await asyncio.to_thread(arrow_stream, table)
        async with session.post(
            url.rstrip("/") + paths[kind],
            data=body,
            headers={**headers, "idempotency-key": key},
            timeout=timeout,
        ) as resp:
            if resp.status >= 300:
                text = (await resp.text())[:300]
                raise RuntimeError(f"{url} answered {resp.status}: {text}")
            data = await resp.json()
            if data.get("rejected"):
                log.warning(
                    "%s rejected %s of the gateway's events: %s",
                    url,
                    data["rejected"],
                    data.get("errors", [])[:3],
                )

    return deliver
