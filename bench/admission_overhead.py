"""The gateway's admission and rate-limit cost per request, on the hot path.

- admit + release, uncontended (headroom, nobody queued: no suspension), gold tier
  under the default tiers (platinum's reservation checked), one and two upstreams,
  with and without a latency sample for the adaptive limiter;
- a rate-limit check (requests and tokens per minute), and check + settle.

Baselines in the same run: awaiting an empty coroutine, `asyncio.Semaphore`
acquire + release (the plain alternative), an empty function call with the same
arguments. Figures are the best of 5 rounds, in µs per call; the JSON is the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from slokit.core.ratelimit import Limits, RateLimiter
from slokit.gateway.admission import DEFAULT_TIERS, Admission, LimiterConfig

N = 100_000
ROUNDS = 5


def best_us(run: Callable[[int], float], n: int = N) -> float:
    return round(min(run(n) for _ in range(ROUNDS)) / n * 1e6, 3)


async def best_us_async(run: Callable[[int], Awaitable[float]], n: int = N) -> float:
    times = [await run(n) for _ in range(ROUNDS)]
    return round(min(times) / n * 1e6, 3)


async def measure_admission() -> dict[str, float]:
    limiter = LimiterConfig(initial_limit=64, max_limit=1024)
    one = Admission(DEFAULT_TIERS, ["a"], limiter)
    two = Admission(DEFAULT_TIERS, ["a", "b"], limiter)
    sem = asyncio.Semaphore(64)

    async def noop() -> None:
        return None

    async def empty(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await noop()
        return time.perf_counter() - t0

    async def semaphore(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await sem.acquire()
            sem.release()
        return time.perf_counter() - t0

    def admit(
        adm: Admission, ups: tuple[str, ...], rtt: float
    ) -> Callable[[int], Awaitable[float]]:
        async def go(n: int) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                permit = await adm.admit("gold", ups)
                permit.release(rtt, True)
            return time.perf_counter() - t0

        return go

    out = {
        "baseline_await_empty_coroutine_us": await best_us_async(empty),
        "baseline_semaphore_acquire_release_us": await best_us_async(semaphore),
        "admit_release_1_upstream_us": await best_us_async(admit(one, ("a",), 0.8)),
        "admit_release_2_upstreams_us": await best_us_async(admit(two, ("a", "b"), 0.8)),
        "admit_release_no_sample_us": await best_us_async(admit(one, ("a",), 0.0)),
    }
    assert one.snapshot()["upstreams"]["a"]["in_flight"] == 0
    return out


def measure_ratelimit() -> dict[str, float]:
    rl = RateLimiter(default=Limits(requests_per_min=10_000_000, tokens_per_min=2_000_000_000))

    def nothing(tenant: str, now: float, est: int) -> None:
        return None

    def empty(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            nothing("acme", i * 1e-4, 300)
        return time.perf_counter() - t0

    def check(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            rl.check("acme", i * 1e-4, 300)
        return time.perf_counter() - t0

    def check_settle(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            rl.check("acme", i * 1e-4, 300)
            rl.settle("acme", i * 1e-4, -100)
        return time.perf_counter() - t0

    return {
        "baseline_empty_call_us": best_us(empty),
        "ratelimit_check_us": best_us(check),
        "ratelimit_check_settle_us": best_us(check_settle),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON line only")
    args = parser.parse_args()
    result: dict[str, float | str] = {"loop": "asyncio"}
    result.update(asyncio.run(measure_admission()))
    result.update(measure_ratelimit())
    result["admit_release_over_semaphore"] = round(
        float(result["admit_release_1_upstream_us"])
        / float(result["baseline_semaphore_acquire_release_us"]),
        2,
    )
    if not args.json:
        for k, v in result.items():
            print(f"{k:45} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
