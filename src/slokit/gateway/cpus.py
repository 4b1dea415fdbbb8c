"""Pinning gateway workers to CPUs (`slokit gateway --cpus 0,1`, or `--cpus auto`), as
nginx's `worker_cpu_affinity` does: worker i runs on the i-th CPU of the list, in turn,
and the local store on the CPUs the list leaves free.

Why: on a small machine the kernel often wakes a worker on the CPU its upstream or
the load generator is running on, and the worker waits there while the other CPU is
idle. Measured on the 2-core development machine, 200 short streams: a floating
worker spent about 0.2 cores a second waiting to run and added 5.5-51 ms to the TTFT
p99; pinned to a CPU of its own it added 1-3 ms (docs/gateway.md, "Pinning workers to
CPUs")."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from itertools import groupby


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """`"0"`, `"0,2"`, `"2-3"` or `"0,2-3"` -> the CPUs in the order given, each once.
    Raises ValueError naming what is wrong and what is valid."""
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and (not dash or hi.isdigit())):
            raise ValueError(
                f"{part!r} is not a CPU number or range; use numbers and ranges like 0,2-3, or auto"
            )
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"{part!r}: a range goes from low to high, like {last}-{first}")
        cpus += [c for c in range(first, last + 1) if c not in cpus]
    return tuple(cpus)


def auto_cpus(allowed: set[int], workers: int) -> tuple[int, ...]:
    """`--cpus auto`: one CPU a worker, the lowest-numbered first, leaving the rest to
    the store; every CPU, in turn, when the workers are as many as the CPUs or more."""
    return tuple(sorted(allowed)[:workers])


def usable() -> set[int]:
    """The CPUs this process may run on (empty where the OS cannot pin: not Linux)."""
    getter = getattr(os, "sched_getaffinity", None)
    return set(getter(0)) if getter is not None else set()


def check_cpus(cpus: Sequence[int], allowed: set[int]) -> str | None:
    """Why `cpus` cannot be used on a machine allowing `allowed`, or None."""
    if not allowed:
        return "pinning to CPUs needs Linux (sched_setaffinity); leave --cpus out here"
    bad = [c for c in cpus if c not in allowed]
    if bad:
        return (
            f"CPU {', '.join(map(str, bad))} is not one this process may run on "
            f"(it may use {format_cpus(allowed)})"
        )
    return None


def format_cpus(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5"."""
    ordered = sorted(set(cpus))
    # consecutive CPUs share the difference between the CPU and its place in the order
    runs = [[c for _, c in g] for _, g in groupby(enumerate(ordered), lambda p: p[1] - p[0])]
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def worker_cpu(cpus: Sequence[int], worker: int) -> int:
    """The CPU of worker number `worker` (0-based): the list in turn."""
    return cpus[worker % len(cpus)]


def store_cpus(cpus: Sequence[int], allowed: set[int]) -> set[int]:
    """The CPUs left to the local store: those the workers do not use, or all of
    `allowed` when the workers take every one."""
    return (allowed - set(cpus)) or set(allowed)


def pin(cpus: Iterable[int]) -> None:
    """Run the calling thread, and the threads and processes it starts from now on, on
    `cpus` only. Call it before starting threads: ones already running keep theirs."""
    os.sched_setaffinity(0, set(cpus))
