"""Admission for the gateway: one adaptive concurrency limit per upstream
(`slokit.core.concurrency`), a priority queue in front of them and the shedding rules
of `slokit.core.admission`, on asyncio.

    permit = await admission.admit("gold", ("vllm-a", "vllm-b"))   # or raises Shed
    try:
        ...                                   # call permit.upstream
    finally:
        permit.release(rtt_s, ok)             # frees the slot, teaches the limiter

A request takes a slot at once, without suspending, when one of its upstreams has
headroom for its tier: the healthy one with the most. Otherwise it waits on a future,
highest priority first and first come within a tier, until a release hands it a slot,
its deadline passes (a timer per waiter, so no completion is needed), a higher tier
evicts it from a full queue, or its client goes away (cancellation takes it out of the
queue, and a slot handed over at that very moment is given back).

Invariant: after every change that can free a slot (a release, a limit change, an
upstream back up, a protection lifted) the queue is served, so no waiter could take a
free slot. Hence an arrival may always try for a slot first without overtaking anyone
it should not, and `try_other` never has to queue.

Health: a request's upstreams that are marked down are skipped, unless all of them
are down; then they are all tried (the health check may be stale; the proxy answers
the error).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from slokit.core.admission import (
    DEADLINE,
    DEFAULT_TIERS,
    EVICTED,
    PREDICTED_WAIT,
    QUEUE_FULL,
    REASONS,
    AdmissionPolicy,
    PeakWindow,
    TierPolicy,
    Waiter,
    WaitQueue,
    demand_reservation,
    kept_slots,
)
from slokit.core.concurrency import GradientLimiter, LimiterConfig
from slokit.errors import SlokitError

__all__ = [
    "DEADLINE",
    "DEFAULT_TIERS",
    "EVICTED",
    "PREDICTED_WAIT",
    "QUEUE_FULL",
    "Admission",
    "LimiterConfig",
    "Permit",
    "Shed",
    "TierPolicy",
]

_UNKNOWN_RETRY_S = 1.0  # Retry-After when no service rate is known yet


class Shed(SlokitError):
    """A request refused to protect the objectives; answer 503 with `Retry-After`.
    `reason` is one of "predicted_wait", "deadline", "queue_full", "evicted"."""

    def __init__(self, reason: str, retry_after_s: float, tier: str = "") -> None:
        super().__init__(f"tier {tier}: shed ({reason}); retry after {retry_after_s:.1f} s")
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.tier = tier


_HOLD_ALPHA = 0.1  # EWMA weight of one permit's hold time
_RATE_STEP_S = 0.25  # admission rates by tier are refreshed at most this often
_RATE_TAU_S = 2.0  # and averaged over about this long
_WHOLE_SHARE = 1 << 30  # `want` of a tier that keeps its whole reserved share


class _Upstream:
    __slots__ = (
        "by_tier",
        "hold_s",
        "in_flight",
        "limit",
        "limiter",
        "name",
        "peaks",
        "roll_at",
        "up",
        "want",
    )

    def __init__(
        self, name: str, config: LimiterConfig, tiers: int, peaks: list[PeakWindow | None]
    ) -> None:
        self.name = name
        self.limiter = GradientLimiter(config)
        self.limit = self.limiter.limit
        self.in_flight = 0
        self.by_tier = [0] * tiers
        self.up = True
        # per tier: its recent peak need here (tiers that reserve, with a window) and
        # the slots it wants reserved (`demand_reservation`; no window: all its share)
        self.peaks = peaks
        self.want = [_WHOLE_SHARE if p is None else demand_reservation(0) for p in peaks]
        self.roll_at = math.inf  # when a peak next forgets something (`PeakWindow.until`)
        # how long a permit is held, grant to release (an EWMA): the slot turnover time.
        # For streams it is the whole stream, not the TTFT the limiter learns from.
        self.hold_s = 0.0


class Permit:
    """A slot on `upstream`, held until `release`. `queue_ms` is the time it waited."""

    __slots__ = (
        "_adm",
        "_done",
        "_granted",
        "_key",
        "_observed",
        "_started",
        "_t",
        "_u",
        "queue_ms",
        "tier",
        "upstream",
    )

    def __init__(
        self, adm: Admission, u: _Upstream, t: int, key: tuple[str, ...], queue_ms: float
    ) -> None:
        self._adm = adm
        self._u = u
        self._t = t
        self._key = key
        self._started = u.in_flight  # in flight when it started, this one included
        self._granted = adm.clock()
        self._done = False
        self._observed = False
        self.upstream = u.name
        self.tier = adm._names[t]
        self.queue_ms = queue_ms

    def observe(self, rtt_s: float) -> None:
        """Teach the upstream's limiter this request's RTT now, before the slot is
        released: a stream's time to first token is known long before the stream ends,
        and the limiter should not wait the whole stream for it. Once per permit; the
        release then gives no second sample."""
        if self._observed or self._done or rtt_s <= 0.0:
            return
        self._observed = True
        self._adm._observe(self._u, rtt_s, self._started, self._granted)

    def release(self, rtt_s: float, ok: bool) -> None:
        """Free the slot. `rtt_s` > 0 teaches the upstream's limiter (0: the request
        never ran, no sample) unless `observe` did already; `ok=False` counts as a drop.
        Later calls do nothing."""
        if self._done:
            return
        self._done = True
        self._adm._release(
            self._u, self._t, rtt_s, ok, self._started, self._granted, self._observed
        )

    def __repr__(self) -> str:
        state = "released" if self._done else "held"
        return f"<Permit {self.tier} -> {self.upstream}, queued {self.queue_ms:.1f} ms, {state}>"


class _Pending:
    __slots__ = ("fut", "timer")

    def __init__(self, fut: asyncio.Future[Permit | Shed]) -> None:
        self.fut = fut
        self.timer: asyncio.TimerHandle | None = None


class Admission:
    def __init__(
        self,
        tiers: Sequence[TierPolicy] = DEFAULT_TIERS,
        upstreams: Sequence[str] = ("default",),
        limiter: LimiterConfig | None = None,
        max_queue: int = 1024,
        *,
        yield_share: float = 0.5,
        reserve_window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`reserve_window_s` > 0: a tier's reservation follows its need (in flight plus
        waiting) at its peak over about that many seconds, up to its `reserved_share`
        (`slokit.core.admission.demand_reservation`); 0: it is always the whole share."""
        if not upstreams:
            raise ValueError("admission: at least one upstream is needed")
        if max_queue < 0:
            raise ValueError(f"admission: max_queue must be >= 0, got {max_queue}")
        self.policy = AdmissionPolicy(tiers, yield_share)
        self.max_queue = max_queue
        self.clock = clock
        if reserve_window_s < 0:
            raise ValueError(f"admission: reserve_window_s must be >= 0, got {reserve_window_s}")
        config = limiter if limiter is not None else LimiterConfig()
        n = len(self.policy.tiers)
        # the tiers whose reservation follows their need (indices), and per tier index
        # whether it does (`_follows`, read on the hot path)
        self._demand = tuple(
            i
            for i, t in enumerate(self.policy.tiers)
            if reserve_window_s > 0 and t.reserved_share > 0
        )
        self._ups = {
            name: _Upstream(
                name,
                config,
                n,
                [PeakWindow(reserve_window_s) if i in self._demand else None for i in range(n)],
            )
            for name in upstreams
        }
        self._follows = [i in self._demand for i in range(n)]
        self._all = tuple(self._ups)
        self._sets: dict[Hashable, tuple[_Upstream, ...]] = {}
        self._queue: WaitQueue[_Pending] = WaitQueue(self.policy)
        self._index = self.policy.index
        self._names = [t.name for t in self.policy.tiers]
        self._admitted = [0] * n
        # admissions per second by tier (an EWMA, refreshed on the slow path): what
        # overtakes a waiting tier of lower priority
        self._admit_rate = [0.0] * n
        self._admit_seen = [0] * n
        self._admit_t = clock()
        self._shed = {(t.name, r): 0 for t in self.policy.tiers for r in REASONS}

    # -- the hot path ------------------------------------------------------------------

    async def admit(self, tier: str, upstreams: Sequence[str] | None = None) -> Permit:
        """A permit for one request of `tier` on one of `upstreams` (default: all), at
        once when there is headroom, else after waiting. Raises Shed."""
        t = self._index.get(tier)
        if t is None:
            raise ValueError(f"unknown tier {tier!r} (known tiers: {', '.join(self._index)})")
        if upstreams is None:
            key = self._all
        elif type(upstreams) is tuple:
            key = upstreams
        else:
            key = tuple(upstreams)
        ups = self._sets.get(key)
        if ups is None:
            ups = self._resolve(key)
        u = self._pick(t, ups)
        if u is not None:  # the fast path: `_grant`, inlined
            self._admitted[t] += 1
            u.in_flight += 1
            u.by_tier[t] += 1
            if self._follows[t]:
                self._need(u, t, self.clock())
            return Permit(self, u, t, key, 0.0)
        return await self._wait(t, key, ups)

    def _grant(self, u: _Upstream, t: int, key: tuple[str, ...], queue_ms: float) -> Permit:
        u.in_flight += 1
        u.by_tier[t] += 1
        if self._follows[t]:
            self._need(u, t, self.clock())
        return Permit(self, u, t, key, queue_ms)

    def _need(self, u: _Upstream, t: int, now: float) -> None:
        """Tier `t`'s need on `u` (in flight there plus waiting) may have peaked:
        update the slots it wants reserved."""
        peak = u.peaks[t]
        if peak is not None:
            if peak.update(u.by_tier[t] + self._queue.counts[t], now):
                u.want[t] = demand_reservation(peak.value)
            if peak.until < u.roll_at:
                u.roll_at = peak.until

    def _roll(self, u: _Upstream, now: float) -> None:
        """Let the peaks of `u` forget what is older than their window (by `now` >=
        `u.roll_at`)."""
        u.roll_at = math.inf
        for t in self._demand:
            peak = u.peaks[t]
            if peak is not None:
                if peak.roll(now):
                    u.want[t] = demand_reservation(peak.value)
                if peak.until < u.roll_at:
                    u.roll_at = peak.until

    def _pick(self, t: int, ups: tuple[_Upstream, ...]) -> _Upstream | None:
        """The upstream with the most headroom for tier `t`, healthy ones only unless
        none is healthy."""
        pol = self.policy
        if pol.cap_start[t] is None:
            # `AdmissionPolicy.headroom` without a protection cap (and `kept_slots`),
            # inlined: the hot path
            reserving = pol.reserving_above[t]
            best: _Upstream | None = None
            best_room = 0
            any_up = False
            for u in ups:
                if u.up:
                    any_up = True
                    limit = u.limit
                    room = limit - u.in_flight
                    for h, share in reserving:
                        kept = int(share * limit + 1e-9)
                        if u.want[h] < kept:
                            kept = u.want[h]
                        unused = kept - u.by_tier[h]
                        if unused > 0:
                            room -= unused
                    if room > best_room:
                        best, best_room = u, room
            if any_up:
                return best
        return self._pick_slow(t, ups)

    def _pick_slow(self, t: int, ups: tuple[_Upstream, ...]) -> _Upstream | None:
        headroom = self.policy.headroom
        live = [u for u in ups if u.up] or ups
        best: _Upstream | None = None
        best_room = 0
        for u in live:
            room = headroom(t, u.limit, u.in_flight, u.by_tier, u.want)
            if room > best_room:
                best, best_room = u, room
        return best

    def _observe(self, u: _Upstream, rtt_s: float, started: int, granted: float) -> None:
        before = u.limit
        u.limit = u.limiter.on_sample(rtt_s, started, self.clock(), False, granted)
        if u.limit > before and self._queue.total:
            self._dispatch(u)

    def _release(
        self,
        u: _Upstream,
        t: int,
        rtt_s: float,
        ok: bool,
        started: int,
        granted: float,
        observed: bool = False,
    ) -> None:
        u.in_flight -= 1
        u.by_tier[t] -= 1
        now = self.clock()
        if rtt_s > 0.0:
            held = now - granted
            u.hold_s = held if u.hold_s == 0.0 else u.hold_s + (held - u.hold_s) * _HOLD_ALPHA
        if not observed and (rtt_s > 0.0 or not ok):
            u.limit = u.limiter.on_sample(rtt_s, started, now, not ok, granted)
        if now >= u.roll_at:
            self._roll(u, now)
        if self._queue.total:
            self._dispatch(u)

    def _resolve(self, key: tuple[str, ...]) -> tuple[_Upstream, ...]:
        if not key:
            raise ValueError("admission: a request needs at least one upstream")
        try:
            ups = tuple(self._ups[name] for name in key)
        except KeyError as exc:
            raise ValueError(
                f"unknown upstream {exc.args[0]!r} (known upstreams: {', '.join(self._ups)})"
            ) from None
        if len(self._sets) < 10_000:
            self._sets[key] = ups
        return ups

    # -- the queue ---------------------------------------------------------------------

    async def _wait(self, t: int, key: tuple[str, ...], ups: tuple[_Upstream, ...]) -> Permit:
        q = self._queue
        name = self.policy.tiers[t].name
        verdict = self.policy.arrival(
            t,
            q.counts,
            self.max_queue,
            self._rate(ups),
            self._headroom(t, ups),
            self._overtaking(t),
            self._reach(t, ups),
        )
        if verdict.shed is not None:
            self._shed[(name, verdict.shed)] += 1
            raise Shed(verdict.shed, self._retry_after(t, ups), name)
        if verdict.evict is not None:
            victim = q.newest(verdict.evict)
            if victim is not None:
                self._drop(victim, EVICTED)
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future())
        now = self.clock()
        w = q.push(t, key, pending, now)
        if self._follows[t]:
            for u in ups:
                self._need(u, t, now)
        pending.timer = loop.call_later(self.policy.tiers[t].deadline_ms / 1000.0, self._expire, w)
        try:
            result = await pending.fut
        except asyncio.CancelledError:
            # the client went away: leave the queue, or give back a slot handed over
            # just before the cancellation arrived
            if q.remove(w):
                pending.timer.cancel()
            elif pending.fut.done() and not pending.fut.cancelled():
                got = pending.fut.result()
                if isinstance(got, Permit):
                    got.release(0.0, True)
            raise
        if isinstance(result, Shed):
            raise result
        return result

    def _dispatch(self, u: _Upstream) -> None:
        """Hand free slots of `u` to the waiters that come first and may use it."""
        q = self._queue
        headroom = self.policy.headroom

        def eligible(t: int, key: Hashable) -> bool:
            ups = self._sets.get(key) or self._resolve(key)  # type: ignore[arg-type]
            if u not in ups:
                return False
            if not u.up and any(x.up for x in ups):
                return False
            return headroom(t, u.limit, u.in_flight, u.by_tier, u.want) >= 1

        now = -1.0
        while q.total:
            w = q.next_for(eligible)
            if w is None:
                return
            q.remove(w)
            pending = w.item
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.fut.done():
                continue  # cancelled: its own handler finds it gone
            if now < 0:
                now = self.clock()
            self._admitted[w.tier] += 1
            key: tuple[str, ...] = w.key  # type: ignore[assignment]
            pending.fut.set_result(self._grant(u, w.tier, key, (now - w.since) * 1000.0))

    def _dispatch_all(self) -> None:
        for u in self._ups.values():
            if not self._queue.total:
                return
            self._dispatch(u)

    def _drop(self, w: Waiter[_Pending], reason: str) -> None:
        """Shed a waiter (already out of the queue or about to be)."""
        self._queue.remove(w)
        pending = w.item
        if pending.timer is not None:
            pending.timer.cancel()
        name = self.policy.tiers[w.tier].name
        self._shed[(name, reason)] += 1
        if not pending.fut.done():
            key: tuple[str, ...] = w.key  # type: ignore[assignment]
            ups = self._sets.get(key) or self._resolve(key)
            pending.fut.set_result(Shed(reason, self._retry_after(w.tier, ups), name))

    def _expire(self, w: Waiter[_Pending]) -> None:
        if w.queued:
            self._drop(w, DEADLINE)

    def sweep(self) -> int:
        """Shed every waiter whose deadline has passed by `clock()`; the number shed.
        The per-waiter timers do this on the event loop's clock; call it when the
        clock is a fake one, or as a safety net."""
        expired = self._queue.expired(self.clock())
        for w in expired:
            self._drop(w, DEADLINE)
        return len(expired)

    def _rate(self, ups: tuple[_Upstream, ...]) -> float:
        """Requests per second the upstreams complete: max(limit, in flight) / the time
        a permit is held, each (Little's law). 0 (unknown: no prediction, no shedding on
        it) unless every limiter is at capacity (saw queueing lately, or is at its
        maximum): a limit still in slow start, or growing under flat latency, is not yet
        what the upstream can take, and a prediction from it would shed for nothing."""
        rate = 0.0
        now = self.clock()
        for u in [u for u in ups if u.up] or ups:
            if not u.limiter.at_capacity(now):
                return 0.0
            if u.hold_s > 0:
                rate += max(u.limit, u.in_flight) / u.hold_s
        return rate

    def _overtaking(self, t: int) -> float:
        """Admissions per second of the tiers above tier `t` (EWMA, time constant
        `_RATE_TAU_S`, refreshed at most every `_RATE_STEP_S`)."""
        now = self.clock()
        dt = now - self._admit_t
        if dt >= _RATE_STEP_S:
            w = -math.expm1(-dt / _RATE_TAU_S)
            rates, seen, admitted = self._admit_rate, self._admit_seen, self._admitted
            for i, n in enumerate(admitted):
                rates[i] += ((n - seen[i]) / dt - rates[i]) * w
                seen[i] = n
            self._admit_t = now
        return sum(self._admit_rate[: self.policy.level_start[t]])

    def _headroom(self, t: int, ups: tuple[_Upstream, ...]) -> int:
        headroom = self.policy.headroom
        return max(
            headroom(t, u.limit, u.in_flight, u.by_tier, u.want)
            for u in [u for u in ups if u.up] or ups
        )

    def _retry_after(self, t: int, ups: tuple[_Upstream, ...]) -> float:
        rate = self._rate(ups)
        if rate <= 0:
            return _UNKNOWN_RETRY_S
        return self.policy.predicted_wait_s(
            t,
            self._queue.counts,
            rate,
            self._headroom(t, ups),
            self._overtaking(t),
            self._reach(t, ups),
        )

    def _reach(self, t: int, ups: tuple[_Upstream, ...]) -> float:
        """Tier `t`'s reachable share now, the least over its live upstreams: the
        reservations above it count as much as they keep."""
        share = self.policy.reachable_share
        return min(share(t, u.limit, u.want) for u in [u for u in ups if u.up] or ups)

    # -- control -----------------------------------------------------------------------

    def try_other(self, permit: Permit, exclude: str) -> Permit | None:
        """A slot on another of the permit's upstreams (not `exclude`, not its own) for
        one retry before the first byte, without queueing; None when none has headroom.
        The caller still releases the first permit."""
        ups = self._sets.get(permit._key) or self._resolve(permit._key)
        others = tuple(u for u in ups if u is not permit._u and u.name != exclude)
        u = self._pick(permit._t, others) if others else None
        if u is None:
            return None
        return self._grant(u, permit._t, permit._key, permit.queue_ms)

    def protect(self, tier: str, on: bool) -> None:
        """While `tier` is protected, the tiers below it together hold at most
        `yield_share` of each upstream's limit."""
        if self.policy.protect(tier, on) and not on:
            self._dispatch_all()

    def mark_down(self, upstream: str, down: bool) -> None:
        u = self._ups.get(upstream)
        if u is None:
            raise ValueError(
                f"unknown upstream {upstream!r} (known upstreams: {', '.join(self._ups)})"
            )
        if u.up == down:
            u.up = not down
            self._dispatch_all()

    def snapshot(self) -> dict[str, Any]:
        """State for /metrics: per upstream its limit, in-flight count, health, RTT
        averages and the slots each reserving tier keeps now; queue length and admitted
        count by tier; shed count by (tier, reason); protected tiers."""
        tiers = self.policy.tiers
        return {
            "upstreams": {
                u.name: {
                    "limit": u.limit,
                    "in_flight": u.in_flight,
                    "healthy": u.up,
                    "rtt_short_ms": u.limiter.short_rtt_s * 1000.0,
                    "hold_ms": u.hold_s * 1000.0,
                    "rtt_long_ms": u.limiter.long_rtt_s * 1000.0,
                    "reserved": {
                        t.name: kept_slots(t.reserved_share, u.limit, u.want[i])
                        for i, t in enumerate(tiers)
                        if t.reserved_share > 0
                    },
                }
                for u in self._ups.values()
            },
            "queued": {t.name: self._queue.counts[i] for i, t in enumerate(tiers)},
            "admitted": {t.name: self._admitted[i] for i, t in enumerate(tiers)},
            "shed": dict(self._shed),
            "protected": {t.name: i in self.policy.protected for i, t in enumerate(tiers)},
        }
