"""What the fake saw and did, for tests: counters and the last N requests as received.

`GET /fake/stats` returns `Stats.to_dict()`; `POST /fake/reset` calls `Stats.reset()`.
Records hold the raw header list and body bytes; they are only turned into JSON when
asked, so keeping them costs the hot path one deque append.
"""

from __future__ import annotations

import base64
from collections import Counter, deque
from typing import Any


class Record:
    """One request as received, and how it ended (`outcome` stays None while it runs)."""

    __slots__ = ("body", "headers", "method", "outcome", "seq", "status", "time", "url")

    def __init__(
        self,
        seq: int,
        time: float,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        self.seq = seq
        self.time = time
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.status: int | None = None
        self.outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        path, _, query = self.url.decode("latin-1").partition("?")
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method.decode("latin-1"),
            "path": path,
            "query": query,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "body": text,
            "body_base64": base64.b64encode(self.body).decode(),
            "status": self.status,
            "outcome": self.outcome,
        }


class Stats:
    """Counters of every request except the fake's own `/fake/*` endpoints.

    `in_flight` counts requests received and not yet ended (queued, running or held by a
    `timeout` fault); `running` those admitted past `max_concurrency`, the number the
    capacity model scales delays by. A request ends once: completed (whole response
    sent, errors included), cancelled (the client went away first), or dropped (the fake
    cut the connection on purpose: `reset`, `disconnect`).
    """

    def __init__(self, history: int) -> None:
        self.history: deque[Record] = deque(maxlen=history)
        self.in_flight = 0  # gauges: what runs now, kept by `reset`
        self.running = 0
        self.queued = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters and forget the history (requests still running end later
        and are counted then)."""
        self.requests = 0
        self.completed = 0
        self.cancelled = 0
        self.dropped = 0
        self.rejected = 0
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.paths: Counter[bytes] = Counter()
        self.history.clear()

    def received(self, record: Record, path: bytes) -> None:
        self.requests += 1
        self.in_flight += 1
        self.history.append(record)
        self.paths[path] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "running": self.running,
            "queued": self.queued,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "faults": dict(sorted(self.faults.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "paths": {k.decode("latin-1"): v for k, v in sorted(self.paths.items())},
            "last": [r.to_dict() for r in self.history],
        }
