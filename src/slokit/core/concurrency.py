"""An adaptive concurrency limit: how many requests to keep in flight toward one
upstream, learned from the latency it answers with. A pure state machine: the caller
feeds one sample per completed request, with the time (`now`) passed in.

The rule is the gradient of Netflix concurrency-limits' `Gradient2Limit`
(github.com/Netflix/concurrency-limits, `limit/Gradient2Limit.java`), with the
`sqrt(limit)` headroom Envoy's adaptive concurrency filter adds (envoyproxy docs,
"Adaptive Concurrency", `new_limit = gradient * limit + headroom`). Per update:

    short    = EWMA of the RTT over the last `short_window` samples  (what happens now)
    long     = EWMA of the RTT with time constant `long_window_s`   (the no-queue baseline)
    gradient = clamp((tolerance * long + slack_s) / short, min_gradient, 1.0)
    target   = limit * gradient + queue_size        (queue_size: sqrt(limit) by default)
    limit    = clamp((1 - smoothing) * limit + smoothing * target, min_limit, max_limit)

While `short` stays within `tolerance` of `long` the gradient is 1 and the limit grows
by `smoothing * queue_size` an update; once queueing raises `short` the gradient falls
below 1 and the limit shrinks, the target by at most half (`min_gradient`) so that one
slow outlier cannot collapse it. As in Gradient2: the limit holds still while the caller is
app-limited (fewer than half the limit in flight: the sample says nothing about more
load), and `long` decays 5% a sample while it is more than twice `short`, so the
baseline recovers quickly once an overload is over.

Three departures, because an LLM upstream answers in seconds, not milliseconds:

- The limit moves once per round trip (at most every `short` seconds, or every
  `update_interval_s` when set), as Envoy's filter moves once per sampling window;
  every sample still feeds the averages. A new limit shows in the latency only a round
  trip later, and moving on every sample then overshoots: in a simulation of 16
  one-second servers the per-sample rule swung between 7 and 52.
- `long` weighs samples by time (`1 - exp(-dt / long_window_s)`), so its memory does
  not shrink to a fraction of a second at thousands of requests per second.
- After `idle_reset_s` without samples the averages start afresh (the upstream may
  have been redeployed).

Three options, off by default (Gradient2's behaviour), that the gateway turns on for
LLM upstreams:

- `slow_start`: as in TCP, the limit doubles per round until queueing first shows
  (the gradient falls below 1), then follows the rule above; it only doubles on a sample
  of a request that ran with at least three quarters of the limit in flight and started
  after the last doubling (without start times: with the whole limit in flight), so
  each doubling is seen in the latency before the next, and it ends only once `warmup`
  samples have set a baseline (the first requests on new connections are slow) and
  three rounds in a row showed queueing (one slow round only holds the limit); a sample
  that itself shows queueing never doubles it, though the short average may not show it
  yet.
  Starting low and doubling reaches a large upstream in a few round trips without first
  flooding a small one, which an initial limit far above its capacity does for as long
  as the excess takes to drain.
- `decrease_smoothing`: the smoothing used when the target is below the limit, so that
  queueing is answered faster than headroom is taken (Envoy's filter does not smooth at
  all).
- `slack_s`: an absolute allowance added to `tolerance * long`, so that milliseconds of
  jitter on a fast upstream are not read as queueing.

One more option, off by default, for an upstream that must not be stretched under a
sustained overload (the equilibrium below keeps `tolerance` and then `queue_size` above
its capacity, which an upstream that slows every request it runs charges to all of them):

- `knee_rounds`: a knee memory, as TCP keeps `ssthresh`. When queueing shows, the limit
  heads for the upstream's capacity as Little's law estimates it, `in_flight * long /
  short` (the requests the upstream completes per second, `in_flight / short`, times the
  time each takes without a queue; `in_flight` averaged over the short window, as
  `short` is), instead of `limit * gradient + queue_size`, and remembers it as the knee.
  For `knee_rounds` round trips from then on the limit grows past the knee by only
  `knee_growth` of the usual step (it climbs back to it at the usual pace) and counts as
  at capacity. So it probes above the knee slowly and falls back to it once queueing
  shows again; an upstream that has grown shows no queueing for `knee_rounds` rounds
  and the usual growth resumes. Slow start is unchanged (the knee is set only after it).

Like Gradient2, a sustained overload lets `long` creep up over about `long_window_s`;
the admission deadlines bound the gateway's own queue meanwhile. The equilibrium
keeps some queue at the upstream on purpose (that is how queueing is seen): where
`gradient = 1 - queue_size / limit`, i.e. `short = tolerance * long / (1 - 1/sqrt(limit))`.

A dropped sample (an error, a timeout) never grows the limit; its RTT counts only when
it is at least `long` (a timeout shows queueing, a fast failure shows nothing), and the
limit is multiplied by `drop_decrease` (1.0, off, by default: an error may be the
client's fault).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# queueing seen within this many round trips means the limit is reached (`at_capacity`)
_CONGESTED_ROUNDS = 10
# slow start ends after this many rounds in a row with queueing
_SLOW_START_STRIKES = 3
# slow start doubles only on a request that ran with this share of the limit in flight
# (reservations for higher tiers may keep the rest free)
_SLOW_START_BUSY = 0.75


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    initial_limit: int = 20
    min_limit: int = 4
    max_limit: int = 1000
    smoothing: float = 0.2  # Gradient2's default
    tolerance: float = 1.5  # short may reach 1.5x long before the limit shrinks (Gradient2)
    min_gradient: float = 0.5  # one update shrinks the target by at most half (Gradient2)
    short_window: int = 10  # samples
    long_window_s: float = 300.0
    warmup: int = 10  # samples averaged plainly before `long` becomes an EWMA
    queue_size: float | None = None  # allowance above the no-queue limit; None: sqrt(limit)
    drop_decrease: float = 1.0  # limit factor on a dropped sample; 1.0 ignores drops
    idle_reset_s: float = 300.0
    update_interval_s: float | None = None  # between limit changes; None: one short RTT
    slow_start: bool = False  # double the limit each round until queueing first shows
    slack_s: float = 0.0  # absolute RTT allowance on top of `tolerance`: jitter, not queueing
    decrease_smoothing: float | None = None  # smoothing when shrinking; None: `smoothing`
    knee_rounds: int = 0  # round trips a knee is remembered after queueing; 0: no knee
    knee_growth: float = 0.1  # share of the usual growth step above a remembered knee

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError(
                "limiter: need 1 <= min_limit <= initial_limit <= max_limit, got "
                f"{self.min_limit}, {self.initial_limit}, {self.max_limit}"
            )
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"limiter: smoothing must be in (0, 1], got {self.smoothing}")
        if self.decrease_smoothing is not None and not 0 < self.decrease_smoothing <= 1:
            raise ValueError(
                f"limiter: decrease_smoothing must be in (0, 1], got {self.decrease_smoothing}"
            )
        if self.tolerance < 1:
            raise ValueError(f"limiter: tolerance must be >= 1, got {self.tolerance}")
        if not 0 < self.min_gradient <= 1:
            raise ValueError(f"limiter: min_gradient must be in (0, 1], got {self.min_gradient}")
        if self.short_window < 1 or self.warmup < 1:
            raise ValueError("limiter: short_window and warmup must be >= 1 sample")
        if self.long_window_s <= 0 or self.idle_reset_s <= 0:
            raise ValueError("limiter: long_window_s and idle_reset_s must be > 0 seconds")
        if self.update_interval_s is not None and self.update_interval_s < 0:
            raise ValueError(
                f"limiter: update_interval_s must be >= 0, got {self.update_interval_s}"
            )
        if self.slack_s < 0:
            raise ValueError(f"limiter: slack_s must be >= 0, got {self.slack_s}")
        if self.queue_size is not None and self.queue_size < 0:
            raise ValueError(f"limiter: queue_size must be >= 0, got {self.queue_size}")
        if self.knee_rounds < 0:
            raise ValueError(f"limiter: knee_rounds must be >= 0, got {self.knee_rounds}")
        if not 0 < self.knee_growth <= 1:
            raise ValueError(f"limiter: knee_growth must be in (0, 1], got {self.knee_growth}")
        if not 0 < self.drop_decrease <= 1:
            raise ValueError(f"limiter: drop_decrease must be in (0, 1], got {self.drop_decrease}")


class GradientLimiter:
    """The concurrency limit of one upstream. `limit` is what admission compares the
    in-flight count with; `short_rtt_s` and `long_rtt_s` are the two averages (0 before
    the first sample)."""

    __slots__ = (
        "_alpha_short",
        "_busy",
        "_congested_until",
        "_doubled_at",
        "_estimate",
        "_knee",
        "_knee_until",
        "_last",
        "_long",
        "_n",
        "_next_update",
        "_short",
        "_slow",
        "_strikes",
        "config",
    )

    def __init__(self, config: LimiterConfig | None = None) -> None:
        self.config = config if config is not None else LimiterConfig()
        self._estimate = float(self.config.initial_limit)
        self._alpha_short = 2.0 / (self.config.short_window + 1)
        self._short = 0.0
        self._long = 0.0
        self._n = 0
        self._last = 0.0
        self._next_update = -math.inf
        self._slow = self.config.slow_start
        self._strikes = 0  # consecutive rounds with queueing in slow start
        self._doubled_at = -math.inf
        self._congested_until = -math.inf
        self._busy = 0.0  # in flight at the samples' starts, averaged as `short` is
        self._knee = 0.0
        self._knee_until = -math.inf

    def at_capacity(self, now: float) -> bool:
        """True when the limit is what the upstream can take: queueing showed (a
        gradient below 1) within the last `_CONGESTED_ROUNDS` round trips (or
        `knee_rounds`, when longer), or the limit is at `max_limit`. Otherwise it is
        still growing (slow start, or latency flat)."""
        return (
            now < self._congested_until
            or now < self._knee_until
            or self._estimate >= self.config.max_limit
        )

    @property
    def knee(self) -> float:
        """The capacity estimated when queueing last showed (0: none; see
        `knee_rounds`)."""
        return self._knee

    @property
    def limit(self) -> int:
        return int(self._estimate)

    @property
    def in_slow_start(self) -> bool:
        """True until queueing first shows (always False without `slow_start`): the
        limit says nothing yet about what the upstream can take."""
        return self._slow

    @property
    def estimate(self) -> float:
        return self._estimate

    @property
    def short_rtt_s(self) -> float:
        return self._short

    @property
    def long_rtt_s(self) -> float:
        return self._long

    def on_sample(
        self,
        rtt_s: float,
        in_flight: int,
        now: float,
        dropped: bool = False,
        started_at: float | None = None,
    ) -> int:
        """Take one completed request: its round-trip time, the number in flight when
        it started, the time it completed and (optionally) the time it started, on the
        same clock. Returns the new limit."""
        c = self.config
        n = self._n
        if n and now - self._last > c.idle_reset_s:
            n = 0  # a stale baseline: learn it again
            self._next_update = -math.inf
            self._slow = c.slow_start
            self._strikes = 0
            self._doubled_at = -math.inf
            self._knee = 0.0
            self._knee_until = -math.inf
        if rtt_s > 0.0 and not (dropped and n and rtt_s < self._long):
            if n == 0:
                self._short = self._long = rtt_s
                self._busy = float(in_flight)
            else:
                self._busy += (in_flight - self._busy) * self._alpha_short
                short = self._short + (rtt_s - self._short) * self._alpha_short
                long = self._long
                if n < c.warmup:
                    long += (rtt_s - long) / (n + 1)
                elif now > self._last:
                    long += (rtt_s - long) * -math.expm1((self._last - now) / c.long_window_s)
                if long > 2.0 * short:
                    long *= 0.95  # Gradient2: let the baseline fall after an overload
                self._short, self._long = short, long
            n += 1
            self._last = now
        self._n = n
        limit = self._estimate
        if dropped:
            if c.drop_decrease < 1.0:
                limit = self._estimate = max(float(c.min_limit), limit * c.drop_decrease)
            return int(limit)
        if n == 0 or now < self._next_update:
            return int(limit)  # within the round: the sample only shapes the averages
        self._next_update = now + (
            self._short if c.update_interval_s is None else c.update_interval_s
        )
        if in_flight * 2 < limit:
            return int(limit)  # app-limited: the sample says nothing about more load
        gradient = (c.tolerance * self._long + c.slack_s) / self._short
        if gradient >= 1.0:
            self._strikes = 0
            if self._slow:
                # slow start: double on a sample that saw the last doubling, i.e. one that
                # started after it (or, without start times, ran with the limit in flight)
                if (
                    in_flight < (limit if started_at is None else _SLOW_START_BUSY * limit)
                    or (started_at is not None and started_at < self._doubled_at)
                    or rtt_s > c.tolerance * self._long + c.slack_s
                ):
                    return int(limit)  # also when this very sample queued: the average lags
                new = min(2.0 * limit, float(c.max_limit))
                self._estimate = new
                self._doubled_at = now
                return int(new)
            gradient = 1.0
            if now < self._knee_until and limit >= self._knee:
                # probing above the capacity last estimated: slowly
                queue = math.sqrt(limit) if c.queue_size is None else c.queue_size
                new = min(limit + c.smoothing * queue * c.knee_growth, float(c.max_limit))
                self._estimate = new
                return int(new)
        else:
            if self._slow:
                self._strikes += 1
                if n <= c.warmup or self._strikes < _SLOW_START_STRIKES:
                    # the baseline is a few samples old, or one round was slow (new
                    # connections, a burst): no verdict yet, the limit holds
                    return int(limit)
                self._slow = False
            self._congested_until = now + _CONGESTED_ROUNDS * self._short
            if gradient < c.min_gradient:
                gradient = c.min_gradient
            if c.knee_rounds:
                # Little's law: what the upstream completes at its no-queue latency
                knee = self._busy * self._long / self._short
                knee = min(limit, max(knee, limit * c.min_gradient, float(c.min_limit)))
                self._knee = knee
                self._knee_until = now + c.knee_rounds * self._short
                a = c.smoothing if c.decrease_smoothing is None else c.decrease_smoothing
                new = (1.0 - a) * limit + a * knee
                self._estimate = new
                return int(new)
        queue = math.sqrt(limit) if c.queue_size is None else c.queue_size
        target = limit * gradient + queue
        a = c.smoothing if target >= limit or c.decrease_smoothing is None else c.decrease_smoothing
        new = (1.0 - a) * limit + a * target
        if new < c.min_limit:
            new = float(c.min_limit)
        elif new > c.max_limit:
            new = float(c.max_limit)
        self._estimate = new
        return int(new)
