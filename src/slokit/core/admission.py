"""Admission policy: which request gets the next slot of an upstream, and which is shed
to keep each tier's queue wait within its objective. Pure: no I/O, no clock; times are
passed in (seconds) and the caller owns the futures or whatever a waiter carries.

Tiers are ordered by `priority` (higher first); within a priority, first come first
served. A request either takes a slot at once, waits in the queue, or is shed:

- `predicted_wait` (on arrival): its predicted wait exceeds `max_queue_wait_ms`. The
  prediction counts the completions it needs: one per waiter it cannot overtake
  (equal or higher priority), one for itself, and one per slot the upstream is over
  its limit (`-headroom`, after the limit shrank), over the completion rate the tier
  can reach: `(ahead + 1 - headroom) / rate`, with
  `rate = reachable_share * sum(max(limit, in_flight) / hold)` over its upstreams
  (Little's law: a slot turns over once per `hold`, the time a request holds it: for
  a stream the whole stream, not just its TTFT). No rate known yet: no prediction, no
  shedding. Requests of higher priority go first, so the tier gets at most what they
  leave: `min(reachable_share * total, total - overtaking)`, where `overtaking` is the
  rate at which higher tiers are admitted (measured by the caller), and at least a
  twentieth of `reachable_share * total`: a tier that higher ones leave no room for is
  shed on arrival instead of waiting until its deadline.
- `queue_full` (on arrival): `max_queue` requests already wait and none of them is of
  a lower priority than the arrival.
- `evicted` (a waiter): the queue was full and a higher-priority request arrived; the
  newest waiter of the lowest queued priority leaves to make room.
- `deadline` (a waiter): it has waited `deadline_ms` (a CoDel-style sojourn limit:
  a request that waited this long would miss its objective anyway).

Slots, per upstream with limit `L`, per-tier in-flight counts `n`:

- Reserved share. A tier `h` with `reserved_share` keeps `r_h = floor(share_h * L)`
  slots against every tier of LOWER priority: such a tier may take a slot only if
  afterwards the free slots still cover the unused reservations of the tiers above it,
  `in_flight + 1 + sum(max(0, r_h - n_h)) <= L`. Tiers of higher or equal priority may
  use the reservation (priority already puts them first); a tier's own reservation is
  not a cap on it. Whole slots, rounded down: a share never withholds more than itself,
  and a small limit (0.2 * 4) reserves nothing. Optionally the caller passes what each
  tier wants (`want`, by tier index) and the reservation is `min(r_h, want_h)`: the
  share is then a ceiling, and a quiet tier keeps only what it wants
  (`demand_reservation`: its recent peak need plus a square-root margin, at least one
  slot) instead of idling a fixed part of the upstream.
- Protection. While tier `p` is protected (its error budget burns too fast, decided
  elsewhere), the tiers of lower priority than `p` together hold at most
  `floor(yield_share * L)` slots: one of them may take a slot only if the in-flight
  count of that whole group stays within it. Several protected tiers: each caps the
  tiers below it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

PREDICTED_WAIT = "predicted_wait"
QUEUE_FULL = "queue_full"
EVICTED = "evicted"
DEADLINE = "deadline"
REASONS = (PREDICTED_WAIT, DEADLINE, QUEUE_FULL, EVICTED)

_MIN_RATE_SHARE = 0.05  # the least share of the completion rate a tier is predicted to get
_EPS = 1e-9  # float slack before rounding down (0.29 * 100 is 28.999999999999996)


@dataclass(frozen=True, slots=True)
class TierPolicy:
    name: str
    priority: int
    reserved_share: float = 0.0
    max_queue_wait_ms: float = 1000.0  # the queue-wait (TTFT) objective: predicted above, shed
    deadline_ms: float = 2000.0  # waited this long: shed

    def __post_init__(self) -> None:
        where = f"tier {self.name!r}"
        if not 0 <= self.reserved_share < 1:
            raise ValueError(
                f"{where}: reserved_share must be in [0, 1), got {self.reserved_share}"
            )
        if self.max_queue_wait_ms <= 0 or self.deadline_ms <= 0:
            raise ValueError(f"{where}: max_queue_wait_ms and deadline_ms must be > 0")


# Platinum is protected hard: up to two fifths of every upstream are kept for it (what
# it needs, where the caller passes `want`) and it waits at most half a second; bronze
# may wait seconds and is shed first.
DEFAULT_TIERS = (
    TierPolicy("platinum", 3, 0.4, 250.0, 500.0),
    TierPolicy("gold", 2, 0.0, 1000.0, 2000.0),
    TierPolicy("silver", 1, 0.0, 2000.0, 4000.0),
    TierPolicy("bronze", 0, 0.0, 4000.0, 8000.0),
)


class Arrival(NamedTuple):
    """What to do with a request that found no free slot: shed it (`shed` is the
    reason), or queue it after evicting the newest waiter of tier index `evict`."""

    shed: str | None
    evict: int | None
    predicted_wait_s: float


class AdmissionPolicy:
    """The tiers (as indices, highest priority first), the protection state and the
    decisions. Tier index `i` is the position in `tiers`."""

    def __init__(self, tiers: Sequence[TierPolicy], yield_share: float = 0.5) -> None:
        if not tiers:
            raise ValueError("admission: at least one tier is needed")
        names = [t.name for t in tiers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"admission: duplicate tier names: {', '.join(dup)}")
        if sum(t.reserved_share for t in tiers) >= 1:
            raise ValueError("admission: reserved shares add up to 100% or more")
        if not 0 < yield_share <= 1:
            raise ValueError(f"admission: yield_share must be in (0, 1], got {yield_share}")
        self.tiers: tuple[TierPolicy, ...] = tuple(sorted(tiers, key=lambda t: -t.priority))
        self.index = {t.name: i for i, t in enumerate(self.tiers)}
        self.yield_share = yield_share
        self.protected: set[int] = set()
        prio = [t.priority for t in self.tiers]
        # tiers of higher priority that hold a reservation, per tier
        self.reserving_above: list[tuple[tuple[int, float], ...]] = [
            tuple(
                (h, t.reserved_share)
                for h, t in enumerate(self.tiers)
                if t.reserved_share > 0 and prio[h] > prio[i]
            )
            for i in range(len(self.tiers))
        ]
        # one past the last tier of equal-or-higher priority: the waiters ahead of tier i
        self.level_end = [sum(1 for p in prio if p >= prio[i]) for i in range(len(prio))]
        # the tiers of strictly higher priority: those that overtake tier i's waiters
        self.level_start = [sum(1 for p in prio if p > prio[i]) for i in range(len(prio))]
        self.cap_start: list[int | None] = [None] * len(self.tiers)
        self._reach: list[float] = []
        self._recompute()

    def protect(self, tier: str, on: bool) -> bool:
        """Protect or release `tier`; True when that changed anything."""
        i = self._tier(tier)
        if (i in self.protected) == on:
            return False
        if on:
            self.protected.add(i)
        else:
            self.protected.discard(i)
        self._recompute()
        return True

    def _tier(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            raise ValueError(f"unknown tier {name!r} (known tiers: {', '.join(self.index)})")
        return i

    def _recompute(self) -> None:
        prio = [t.priority for t in self.tiers]
        for i in range(len(self.tiers)):
            above = [p for p in self.protected if prio[p] > prio[i]]
            if above:
                # the highest protected tier above caps the largest group: the tiers
                # below it, a suffix of the priority order, which includes tier i
                top = max(prio[p] for p in above)
                self.cap_start[i] = next(k for k, p in enumerate(prio) if p < top)
            else:
                self.cap_start[i] = None
        self._reach = [
            min(
                1.0 - sum(s for _, s in self.reserving_above[i]),
                self.yield_share if self.cap_start[i] is not None else 1.0,
            )
            for i in range(len(self.tiers))
        ]

    def headroom(
        self,
        tier: int,
        limit: int,
        in_flight: int,
        by_tier: Sequence[int],
        want: Sequence[int] | None = None,
    ) -> int:
        """Slots tier `tier` may still take on an upstream with this limit and these
        in-flight counts (by tier index); it may take one when this is >= 1. `want`:
        the slots each tier wants reserved (by tier index; None: its whole share)."""
        free = limit - in_flight
        for h, share in self.reserving_above[tier]:
            unused = kept_slots(share, limit, None if want is None else want[h]) - by_tier[h]
            if unused > 0:
                free -= unused
        start = self.cap_start[tier]
        if start is not None:
            capped = int(self.yield_share * limit + _EPS) - sum(by_tier[start:])
            if capped < free:
                free = capped
        return free

    def reachable_share(
        self, tier: int, limit: int = 0, want: Sequence[int] | None = None
    ) -> float:
        """The share of a limit the tier can hold when every reservation above it is in
        use and every protection cap binds: the basis of its service rate. With `want`
        (see `headroom`) and the `limit` it applies to, the reservations above count
        as much as they keep now."""
        if want is None or limit <= 0:
            return self._reach[tier]
        kept = sum(kept_slots(s, limit, want[h]) for h, s in self.reserving_above[tier])
        reach = 1.0 - kept / limit
        if self.cap_start[tier] is not None and self.yield_share < reach:
            reach = self.yield_share
        return reach

    def predicted_wait_s(
        self,
        tier: int,
        queued: Sequence[int],
        rate_per_s: float,
        headroom: int = 0,
        overtaking_per_s: float = 0.0,
        reach: float | None = None,
    ) -> float:
        """The wait a new request of `tier` can expect behind the waiters it cannot
        overtake, when its best upstream has `headroom` (<= 0) slots for it and requests
        of higher priority keep taking `overtaking_per_s` of the slots that free up
        (they go first, so only the rest serves this tier: at least a twentieth of the
        rate, so that a noisy estimate never predicts forever); 0 when no rate is
        known. `reach`: the tier's reachable share now (default: with every
        reservation above it whole)."""
        if rate_per_s <= 0:
            return 0.0
        ahead = sum(queued[: self.level_end[tier]])
        over = -headroom if headroom < 0 else 0
        rate = rate_per_s * (self._reach[tier] if reach is None else reach)
        if overtaking_per_s > 0.0:
            rest = rate_per_s - overtaking_per_s  # the reservations above are part of it
            rate = max(min(rate, rest), rate * _MIN_RATE_SHARE)
        return (ahead + 1 + over) / rate

    def arrival(
        self,
        tier: int,
        queued: Sequence[int],
        max_queue: int,
        rate_per_s: float,
        headroom: int = 0,
        overtaking_per_s: float = 0.0,
        reach: float | None = None,
    ) -> Arrival:
        """The verdict on a request that found no slot, given the queue lengths by tier
        index, the queue bound, the completion rate of its upstreams (requests/s), the
        headroom of the best of them, the rate at which tiers of higher priority are
        admitted and (optionally) its reachable share now."""
        wait = self.predicted_wait_s(tier, queued, rate_per_s, headroom, overtaking_per_s, reach)
        if wait * 1000.0 > self.tiers[tier].max_queue_wait_ms:
            return Arrival(PREDICTED_WAIT, None, wait)
        if sum(queued) < max_queue:
            return Arrival(None, None, wait)
        prio = self.tiers[tier].priority
        for victim in range(len(self.tiers) - 1, -1, -1):  # lowest priority first
            if self.tiers[victim].priority >= prio:
                break
            if queued[victim] > 0:
                return Arrival(None, victim, wait)
        return Arrival(QUEUE_FULL, None, wait)


def kept_slots(share: float, limit: int, want: int | None = None) -> int:
    """The slots a reservation of `share` keeps on a limit of `limit`: whole slots,
    rounded down, and no more than the tier `want`s (None: the whole share)."""
    kept = int(share * limit + _EPS)
    return kept if want is None or want >= kept else want


def demand_reservation(peak: int) -> int:
    """The slots to keep for a tier whose need (in flight plus waiting) peaked at
    `peak` lately: the peak plus a margin of its square root for a burst above it (as
    square-root staffing provisions `a + beta * sqrt(a)` servers for an offered load of
    `a`, here with beta = 1), and at least one slot for the next request of a quiet
    tier."""
    return peak + max(1, math.ceil(math.sqrt(peak)))


class PeakWindow:
    """The largest value seen over the last `window_s / 2` to `window_s` seconds, in
    two half-window buckets: the newer one collects, and when it is full (at `until`)
    the older one is dropped. `value` is the current peak; times are passed in."""

    __slots__ = ("_cur", "_prev", "half_s", "until", "value")

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"peak window must be > 0 seconds, got {window_s}")
        self.half_s = window_s / 2.0
        self._cur = self._prev = self.value = 0
        self.until = -math.inf

    def roll(self, now: float) -> bool:
        """Drop what is older than the window by `now`; True when `value` changed."""
        if now < self.until:
            return False
        # the bucket that just filled becomes the older one, unless it too is stale
        self._prev = self._cur if now < self.until + self.half_s else 0
        self._cur = 0
        self.until = now + self.half_s
        before, self.value = self.value, self._prev
        return self.value != before

    def update(self, x: int, now: float) -> bool:
        """Take a new observation `x` at `now`; True when `value` changed."""
        changed = self.roll(now)
        if x > self._cur:
            self._cur = x
            if x > self.value:
                self.value = x
                return True
        return changed


T = TypeVar("T")


class Waiter(Generic[T]):
    """One queued request: its tier index, the key of the upstreams it may use, when it
    arrived and when its deadline passes, and the caller's `item`."""

    __slots__ = ("deadline", "item", "key", "queued", "seq", "since", "tier")

    def __init__(
        self, seq: int, tier: int, key: Hashable, item: T, since: float, deadline: float
    ) -> None:
        self.seq = seq
        self.tier = tier
        self.key = key
        self.item = item
        self.since = since
        self.deadline = deadline
        self.queued = True


class WaitQueue(Generic[T]):
    """Waiters by tier index, FIFO per tier and upstream key. Removal from the middle
    (a cancelled client) is O(1): the waiter is marked and skipped later."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        n = len(policy.tiers)
        self.counts = [0] * n
        self.total = 0
        self._q: list[dict[Hashable, deque[Waiter[T]]]] = [{} for _ in range(n)]
        self._seq = 0
        levels: list[list[int]] = []
        for i, t in enumerate(policy.tiers):
            if levels and policy.tiers[levels[-1][0]].priority == t.priority:
                levels[-1].append(i)
            else:
                levels.append([i])
        self._levels = [tuple(level) for level in levels]

    def push(self, tier: int, key: Hashable, item: T, now: float) -> Waiter[T]:
        self._seq += 1
        deadline = now + self.policy.tiers[tier].deadline_ms / 1000.0
        w = Waiter(self._seq, tier, key, item, now, deadline)
        q = self._q[tier].get(key)
        if q is None:
            q = self._q[tier][key] = deque()
        q.append(w)
        self.counts[tier] += 1
        self.total += 1
        return w

    def remove(self, w: Waiter[T]) -> bool:
        """Take `w` out; False when it had already left."""
        if not w.queued:
            return False
        w.queued = False
        self.counts[w.tier] -= 1
        self.total -= 1
        return True

    def newest(self, tier: int) -> Waiter[T] | None:
        """The waiter of `tier` that arrived last (the one to evict)."""
        best: Waiter[T] | None = None
        for q in self._q[tier].values():
            while q and not q[-1].queued:
                q.pop()
            if q and (best is None or q[-1].seq > best.seq):
                best = q[-1]
        return best

    def _heads(self, tier: int) -> Iterator[Waiter[T]]:
        for q in self._q[tier].values():
            while q and not q[0].queued:
                q.popleft()
            if q:
                yield q[0]

    def next_for(self, eligible: Callable[[int, Hashable], bool]) -> Waiter[T] | None:
        """The waiter to admit next among those `eligible(tier, key)` accepts: highest
        priority first, then first come. Every waiter behind a head shares its tier and
        key, so only heads are asked."""
        if not self.total:
            return None
        for level in self._levels:
            best: Waiter[T] | None = None
            for tier in level:
                if not self.counts[tier]:
                    continue
                for w in self._heads(tier):
                    if (best is None or w.seq < best.seq) and eligible(tier, w.key):
                        best = w
            if best is not None:
                return best
        return None

    def expired(self, now: float) -> list[Waiter[T]]:
        """The waiters whose deadline has passed, taken out of the queue."""
        out: list[Waiter[T]] = []
        for tier in range(len(self._q)):
            if not self.counts[tier]:
                continue
            for q in self._q[tier].values():
                while q and (not q[0].queued or q[0].deadline <= now):
                    w = q.popleft()
                    if self.remove(w):
                        out.append(w)
        return out
