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

# Alertmanager treats a firing alert it has not heard about within its resolve_timeout
# (default 5m) as resolved; like Prometheus (resend_delay, 1m), slokit re-sends every
# firing alert to Alertmanager receivers this often. Other receivers hear once.
RESEND_SECONDS = 60


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
        receivers = parse_receivers(spec.alerting.receivers)
        self.resend_to = {name for name, r in receivers.items() if r.type == "alertmanager"}
        self.dispatcher = dispatcher or Dispatcher(receivers, on_delivery=self._delivered)
        self.ticks = 0
        self.last_tick: Tick | None = None
        self._resent_at: datetime | None = None

    def tick(self, now: datetime | None = None) -> Tick:
        t = self.engine.tick(now or self.clock())
        persist(t, self.store.put_alerts)
        for tr in t.transitions:
            log.info("%s %s", tr.action, tr.notification.summary)
            if tr.receivers:
                self.dispatcher.submit(tr.notification, list(tr.receivers))
        self._resend(t)
        self.ticks += 1
        self.last_tick = t
        return t

    def _resend(self, t: Tick) -> None:
        """Re-send what still fires to Alertmanager receivers, so it stays active there."""
        if not self.resend_to:
            return
        if (
            self._resent_at is not None
            and (t.at - self._resent_at).total_seconds() < RESEND_SECONDS
        ):
            return
        self._resent_at = t.at
        fresh = {tr.alert.key for tr in t.transitions}
        for alert in self.engine.firing():
            if alert.key in fresh:
                continue
            names = [
                n
                for n in self.spec.alerting.receivers_for(alert.slo, alert.severity)
                if n in self.resend_to
            ]
            if names:
                self.dispatcher.submit(self.engine.notification(alert, "firing", t.at), names)

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
