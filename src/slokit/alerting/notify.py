"""Deliver notifications to receivers, with retries and a delivery log.

Each receiver gets its own lane: a bounded queue, one worker thread and one HTTP
client. A receiver that is down (timeouts, 5xx, refused connections) only holds up its
own lane, and within a lane deliveries keep submission order, so a "resolved" never
overtakes its "firing". `submit` only enqueues: the evaluator is never blocked.

Each delivery makes up to `attempts` attempts. Connection errors, timeouts, 429 and
5xx are retried after a full-jitter exponential backoff (AWS Architecture Blog,
"Exponential Backoff and Jitter": delay = random() * min(cap, base * 2^(attempt-1))),
or after the server's `Retry-After` on 429/503. Other 4xx are final: the request itself
is wrong and sending it again will not fix it.

Every delivery ends in exactly one `DeliveryRecord` handed to `on_delivery`: delivered,
given up, dropped from a full queue, or abandoned at `close()`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from slokit.alerting.notification import Notification
from slokit.alerting.receivers import (
    AlertmanagerReceiver,
    Delivery,
    Outbound,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
    parse_receivers,
    sign,
    verify_signature,
)
from slokit.errors import SlokitError, SpecError

__all__ = [
    "AlertmanagerReceiver",
    "DeliveryRecord",
    "Dispatcher",
    "PagerDutyReceiver",
    "Receiver",
    "SlackReceiver",
    "WebhookReceiver",
    "backoff_delay",
    "parse_receivers",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # per receiver; at one notification per SLO transition, hours of outage
QUEUE_FULL = "queue full"
CLOSED = "dispatcher closed"


@dataclass(frozen=True)
class DeliveryRecord:
    """How one delivery of one notification to one receiver ended. `attempts` is 0
    when nothing was sent (dropped, abandoned, or the receiver's secret is missing);
    then `first_attempt_at` is when it was given up."""

    receiver: str
    receiver_type: str
    key: str
    action: str
    slo: str
    severity: str
    attempts: int
    ok: bool
    status: int | None
    error: str | None
    first_attempt_at: datetime
    finished_at: datetime


def backoff_delay(attempt: int, delivery: Delivery, rng: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): full jitter, so
    many alerts failing together do not retry in lockstep."""
    return rng() * min(delivery.max_backoff, delivery.backoff * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class _Attempt:
    status: int | None
    error: str | None  # None: delivered
    retry: bool = False
    retry_after: float | None = None  # seconds the server asked us to wait


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is rare for webhooks; it falls back
    to the backoff)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _attempt(client: httpx.Client, request: Outbound, timeout: float) -> _Attempt:
    """One POST, classified: delivered, worth retrying, or final."""
    try:
        response = client.post(
            request.url, content=request.body, headers=request.headers, timeout=timeout
        )
    except httpx.TimeoutException as exc:
        return _Attempt(None, f"timed out after {timeout:g} s ({type(exc).__name__})", True)
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        return _Attempt(None, f"{type(exc).__name__}: {exc}", True)
    except httpx.HTTPError as exc:
        return _Attempt(None, f"{type(exc).__name__}: {exc}")
    status = response.status_code
    if 200 <= status < 300:
        return _Attempt(status, None)
    said = " ".join(response.text.split())[:200]
    error = f"HTTP {status}" + (f": {said}" if said else "")
    retry = status == 429 or status >= 500
    after = _retry_after(response) if status in (429, 503) else None
    return _Attempt(status, error, retry, after)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Env:
    """What every lane shares: the dependencies a test replaces."""

    emit: Callable[[DeliveryRecord], None]
    clock: Callable[[], datetime]
    sleep: Callable[[float], object] | None  # None: wait on `stop`, so close() cuts it short
    rng: Callable[[], float]
    environ: Mapping[str, str]
    stop: threading.Event


class _Lane:
    """One receiver's queue, worker thread and HTTP client (owned by the thread)."""

    def __init__(self, name: str, receiver: Receiver, env: _Env, queue_size: int) -> None:
        self.name, self.receiver, self.env = name, receiver, env
        self._size = queue_size
        self._cond = threading.Condition()
        self._queue: deque[Notification] = deque()
        self._dropped: list[DeliveryRecord] = []
        self._busy = False  # the worker holds work taken off the queue
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"slokit-notify-{name}")
        self._thread.daemon = True  # a hung receiver must not keep the process alive
        self._thread.start()

    # -- caller side

    def put(self, n: Notification) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError("the dispatcher is closed")
            if len(self._queue) >= self._size:
                oldest = self._queue.popleft()
                self._dropped.append(self._given_up(oldest, QUEUE_FULL))
            self._queue.append(n)
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(self._idle, timeout)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- worker side

    def _idle(self) -> bool:
        return not self._queue and not self._dropped and not self._busy

    def _take(self) -> tuple[list[DeliveryRecord], Notification | None, bool]:
        """Records to emit, the next notification to deliver, and whether to stop."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._dropped or self._closing)
            if self._closing:
                self._dropped += [self._given_up(n, CLOSED) for n in self._queue]
                self._queue.clear()
            records, self._dropped = self._dropped, []
            job = self._queue.popleft() if self._queue else None
            self._busy = True
            return records, job, self._closing

    def _run(self) -> None:
        with httpx.Client(headers={"User-Agent": "slokit"}, follow_redirects=False) as client:
            while True:
                records, job, closing = self._take()
                if job is not None:
                    records.append(self._deliver_or_fail(client, job))
                for record in records:
                    self.env.emit(record)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                if closing and job is None:
                    return

    def _deliver_or_fail(self, client: httpx.Client, n: Notification) -> DeliveryRecord:
        """`_deliver`, but a surprise (a bug, an unexpected library error) fails this one
        delivery instead of killing the lane and every delivery queued behind it."""
        try:
            return self._deliver(client, n)
        except Exception as exc:
            log.exception("notify %s: delivery failed unexpectedly", self.name)
            return self._given_up(n, f"{type(exc).__name__}: {exc}")

    def _deliver(self, client: httpx.Client, n: Notification) -> DeliveryRecord:
        r, first = self.receiver, self.env.clock()
        attempts, result = 0, _Attempt(None, CLOSED)
        while attempts < r.attempts:
            try:  # rendered per attempt: a retry carries a fresh signature timestamp
                request = r.render(n, now=self.env.clock(), environ=self.env.environ)
            except SlokitError as exc:
                result = _Attempt(None, str(exc))
                break
            attempts += 1
            result = _attempt(client, request, r.timeout)
            if not result.retry or attempts >= r.attempts:
                break
            if result.retry_after is not None:
                delay = min(r.max_backoff, result.retry_after)
            else:
                delay = backoff_delay(attempts, r, self.env.rng)
            if self._pause(delay):
                result = _Attempt(result.status, f"{result.error}; {CLOSED}")
                break
        return self._record(n, attempts, result, first)

    def _pause(self, seconds: float) -> bool:
        """Wait before a retry; True when the dispatcher is closing meanwhile."""
        if self.env.sleep is None:
            return self.env.stop.wait(seconds)
        self.env.sleep(seconds)
        return self.env.stop.is_set()

    def _record(
        self, n: Notification, attempts: int, result: _Attempt, first: datetime
    ) -> DeliveryRecord:
        ok = result.error is None
        if not ok:
            log.warning(
                "notify %s: %s %s of %s/%s not delivered after %d attempt(s): %s",
                self.name, n.action, n.severity, n.service, n.slo, attempts, result.error,
            )  # fmt: skip
        return DeliveryRecord(
            receiver=self.name,
            receiver_type=self.receiver.type,
            key=n.key,
            action=n.action,
            slo=n.slo,
            severity=n.severity,
            attempts=attempts,
            ok=ok,
            status=result.status,
            error=result.error,
            first_attempt_at=first,
            finished_at=self.env.clock(),
        )

    def _given_up(self, n: Notification, why: str) -> DeliveryRecord:
        return self._record(n, 0, _Attempt(None, why), self.env.clock())


class Dispatcher:
    """Sends each submitted notification to the named receivers, in the background.

    `on_delivery` gets every delivery's final record, from a worker thread but never
    two calls at once (a delivery log writer needs no locking); keep it quick, it holds
    up the lanes. Its exceptions are logged. `sleep` (default: an interruptible wait),
    `rng`, `clock` and `environ` are there for tests."""

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        on_delivery: Callable[[DeliveryRecord], None] | None = None,
        *,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = _utcnow,
        environ: Mapping[str, str] = os.environ,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._on_delivery = on_delivery
        self._emit_lock = threading.Lock()
        self._stop = threading.Event()
        env = _Env(self._emit, clock, sleep, rng, environ, self._stop)
        self._lanes = {name: _Lane(name, r, env, queue_size) for name, r in receivers.items()}

    def submit(self, notification: Notification, receiver_names: Iterable[str]) -> None:
        """Queue `notification` for each named receiver and return at once."""
        names = list(dict.fromkeys(receiver_names))
        unknown = [n for n in names if n not in self._lanes]
        if unknown:
            known = ", ".join(sorted(self._lanes)) or "none"
            raise SpecError(f"alerting: unknown receiver(s) {', '.join(unknown)} (known: {known})")
        for name in names:
            self._lanes[name].put(notification)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queue is drained and every record emitted; False if that
        takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        return all(
            lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self._lanes.values()
        )

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers. What is still queued or being retried is recorded as not
        delivered ("dispatcher closed"): call `flush` first to deliver it."""
        self._stop.set()
        for lane in self._lanes.values():
            lane.close()
        deadline = time.monotonic() + timeout
        for lane in self._lanes.values():
            lane.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _emit(self, record: DeliveryRecord) -> None:
        if self._on_delivery is None:
            return
        with self._emit_lock:
            try:
                self._on_delivery(record)
            except Exception:
                log.exception("on_delivery failed for the delivery to %s", record.receiver)
