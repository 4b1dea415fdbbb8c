"""The live alert evaluator of `slokit serve`: every `alerting.interval` it runs one
`AlertEngine.tick`, persists what changed and hands notifications to the dispatcher,
which delivers them on its own threads (a receiver that is down never holds up an
evaluation)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slokit.alerting.engine import AlertEngine, Tick, persist
from slokit.engine.evaluate import Evaluator
from slokit.spec.model import Spec
from slokit.store.duckdb_store import DuckDBStore

if TYPE_CHECKING:
    from slokit.alerting.notify import DeliveryRecord, Dispatcher

log = logging.getLogger("slokit.alerts")


def _now() -> datetime:
    return datetime.now(UTC)


class AlertService:
    def __init__(
        self,
        spec: Spec,
        store: DuckDBStore,
        *,
        evaluator: Evaluator | None = None,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        from slokit.alerting.notify import Dispatcher, parse_receivers

        self.spec = spec
        self.store = store
        self.clock = clock
        self.engine = AlertEngine.from_store(spec, store, evaluator=evaluator)
        self.dispatcher = dispatcher or Dispatcher(
            parse_receivers(spec.alerting.receivers), on_delivery=self._delivered
        )
        self.ticks = 0
        self.last_tick: Tick | None = None

    def tick(self, now: datetime | None = None) -> Tick:
        t = self.engine.tick(now or self.clock())
        persist(t, self.store.put_alerts)
        for tr in t.transitions:
            log.info("%s %s", tr.action, tr.notification.summary)
            if tr.receivers:
                self.dispatcher.submit(tr.notification, list(tr.receivers))
        self.ticks += 1
        self.last_tick = t
        return t

    def _delivered(self, record: DeliveryRecord) -> None:
        row: dict[str, Any] = dataclasses.asdict(record)
        self.store.put_deliveries([row])

    async def run(self, lock: asyncio.Lock | None = None) -> None:
        """Tick every interval until cancelled. `lock` serialises ticks with other
        users of the same evaluator (GET /v1/status)."""
        interval = self.spec.alerting.interval_seconds
        while True:
            try:
                if lock is None:
                    await asyncio.to_thread(self.tick)
                else:
                    async with lock:
                        await asyncio.to_thread(self.tick)
            except Exception:  # one bad tick must not stop alerting
                log.exception("alert evaluation failed")
            await asyncio.sleep(interval)

    def close(self, timeout: float = 5.0) -> None:
        self.dispatcher.flush(timeout)
        self.dispatcher.close()
