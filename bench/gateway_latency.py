"""The gateway's added latency: the same load sent to the fake LLM directly and through
`slokit gateway` (default config: every event recorded, admission on), in one run.

(a) open loop, non-streaming, at `--rate` requests/s (default 1,000; fake-llm with
    `--ttft-ms 0 --itl-ms 0 --output-tokens 16`): p50/p99 latency direct and through the
    gateway, measured from each request's scheduled send time (no coordinated omission),
    and the added p50/p99 (targets: <= 1.5 ms and <= 4 ms);
(b) `--streams` concurrent streams (default 200; fake-llm with a constant TTFT, default
    50 ms, a small ITL, uniform in 10..30 ms so that the streams do not move in lockstep,
    16 tokens, and a capacity above the stream count, so the fake's own load model does
    not stretch the TTFT): TTFT p50/p99 direct and through the gateway, and the added
    p50/p99 (targets: <= 2 ms and <= 5 ms). The client runs in its own process, pinned:
    bench/stream_client.py (httptools, about 0.2 cores for 200 short streams) or, with
    `--client aiohttp`, this file's `_ttft_client` (aiohttp, every SSE line's JSON parsed
    until the first content, about 0.6 cores). Its streams start spread over 0.5 s and
    the requests started in the first 2 s of a run are not counted. The gateway's adaptive
    concurrency limit starts at 8 (admission's `initial_limit`) and doubles per round
    trip in slow start, so 200 streams queue at first: the first gateway run gets
    `--stream-warmup` s (20) of load before it is measured, reported apart as the cold
    start, with the limit it reached.
    The same is then measured with long streams (`--long-itl-ms`, 100 ms, set per request
    with the fake's `x-fake-itl-ms` header): the same 200 concurrent streams but ~6x fewer
    new streams and chunks per second, which tells the gateway's own cost apart from the
    CPU the short streams' rate takes on a 2-core machine shared by client, fake and gateway.
    Placement, as one deploys a latency-sensitive proxy: the gateway runs with
    `--cpus 0` (`--gateway-cpus`: its worker on core 0, its local store on the other
    core) and fake-llm on core 1 beside the client (`--fake-cpus`), in the direct runs
    too. With every process floating (`--gateway-cpus '' --fake-cpus ''`) the kernel
    often wakes the worker on the core the fake or the client is running on, where it
    waits while the other core idles: added p99 5.5-51 ms instead of 1-3 ms here.

Every server is a subprocess started through the CLI (`slokit fake-llm`, `slokit gateway`)
on free 127.0.0.1 ports, in its own process group, stopped in a `finally`. The load
generator (bench/wrk_load.py's open_loop for (a), the TTFT client for (b)) is
pinned to `--cpus` (default: core 1); every run waits for an idle machine first
(wait_quiet) and is re-run, up to 3 times, when other processes took more than 8% of the
machine during it (figures marked `disturbed` otherwise). Direct and gateway runs
alternate (`--rounds`, `--stream-rounds`) and each figure is the median of the rounds.

This module also holds the server helpers the other gateway benchmarks import
(gateway_throughput.py, gateway_overload.py).

    .venv/bin/python bench/gateway_latency.py                 # readable table
    .venv/bin/python bench/gateway_latency.py --json          # one JSON line on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SLOKIT = str(ROOT / ".venv" / "bin" / "slokit")
sys.path.insert(0, str(HERE))

from wrk_load import (  # noqa: E402
    OpenLoopResult,
    Percentiles,
    auth_headers,
    chat_body,
    chat_url,
    cpu_busy,
    open_loop,
    wait_quiet,
)

# ---------------------------------------------------------------- shared server helpers


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out (bind to 0) can be
    taken as the source port of one of the benchmark's own client connections before the
    server binds it (EADDRINUSE), which the thousands of connections here make likely."""
    lo, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, lo - 12000), lo)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0
) -> None:
    """Poll `url` until it answers 200; raise with the log's tail if `proc` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{proc.args} exited {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError):
            if http_get(url)[0] == 200:
                return
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s:\n{tail}")


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> int | None:
    """SIGTERM `proc`'s process group (its workers too), SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # workers of the group that outlived the leader
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


@contextlib.contextmanager
def server(
    cmd: Sequence[str],
    ready_url: str,
    log_path: Path,
    timeout: float = 60.0,
    cpus: set[int] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` in its own process group (output to `log_path`), on `cpus` only when
    given, until the block ends."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
            preexec_fn=pin,
        )
    try:
        wait_http(ready_url, proc, log_path, timeout)
        yield proc
    finally:
        stop_group(proc)


@contextlib.contextmanager
def fake_llm(
    tmp: Path, *args: str, name: str = "fake", cpus: set[int] | None = None
) -> Iterator[str]:
    """`slokit fake-llm` on a free port with `args` (on `cpus` only, when given); yields
    its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [SLOKIT, "fake-llm", "--port", str(port), *args]
    with server(cmd, f"{url}/health", tmp / f"{name}.log", cpus=cpus):
        yield url


@contextlib.contextmanager
def gateway(
    tmp: Path,
    upstream: str,
    *,
    workers: int = 1,
    config: Path | None = None,
    name: str = "gateway",
    cpus: str = "",
) -> Iterator[dict[str, Any]]:
    """`slokit gateway` in front of `upstream`, with a fresh DuckDB file in `tmp` and its
    local `slokit serve` on another free port, with `--cpus cpus` when given; yields
    {"url", "serve_url", "db", "proc"}. Ready once both /healthz answer 200 (the
    gateway's only after a health check found the upstream)."""
    port, serve_port = free_port(), free_port()
    db = tmp / f"{name}.duckdb"
    cmd = [SLOKIT, "gateway", "--upstream", upstream, "--port", str(port)]
    cmd += ["--db", str(db), "--serve-port", str(serve_port), "--workers", str(workers)]
    if config is not None:
        cmd += ["--config", str(config)]
    if cpus:
        cmd += ["--cpus", cpus]
    url, serve_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{serve_port}"
    log_path = tmp / f"{name}.log"
    with server(cmd, f"{url}/healthz", log_path) as proc:
        wait_http(f"{serve_url}/healthz", proc, log_path)
        yield {"url": url, "serve_url": serve_url, "db": db, "proc": proc, "log": log_path}


def quiet(label: str, threshold: float = 0.15, timeout: float = 60.0) -> float:
    """wait_quiet(), logged: returns the busy fraction measured just before the phase."""
    busy = wait_quiet(threshold=threshold, timeout=timeout)
    if busy > threshold:
        log(f"  [{label}] machine still {busy:.0%} busy after {timeout:.0f}s: figures disturbed")
    return busy


def _proc_stat() -> tuple[int, int]:
    """(all jiffies, idle jiffies) of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + (v[4] if len(v) > 4 else 0)


def _role(pid: int, me: int, parent_role: str | None) -> str:
    if pid == me:
        return "benchmark"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "other"
    text = b" ".join(argv)
    if argv[0].endswith(b"wrk"):
        return "wrk"
    if b"fake-llm" in text:
        return "fake-llm"
    if b"litellm" in text:
        return "litellm"
    if b"l4_relay.py" in text:
        return "relay"
    if b" gateway " in text:
        return "gateway"
    if b"wrk_load.py _worker" in text:
        return "load client"
    if b"multiprocessing" in text and parent_role in ("gateway", "gateway worker"):
        return "gateway worker"
    return parent_role or "other"


def own_usage() -> dict[str, int]:
    """CPU jiffies used so far by this process and its descendants (servers, their workers,
    the load generators), by role; children already reaped count in their parent's."""
    parent: dict[int, int] = {}
    times: dict[int, tuple[int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(d)
        parent[pid] = int(fields[1])
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after the name
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        times[pid] = (own, reaped)
    me = os.getpid()
    roles: dict[int, str] = {}

    def role_of(pid: int) -> str | None:
        """The role of `pid` if it descends from this process, else None."""
        if pid in roles:
            return roles[pid]
        chain, p = [], pid
        while p > 1 and p != me and len(chain) < 64:
            chain.append(p)
            p = parent.get(p, 0)
        if p != me:
            return None
        role = _role(me, me, None)
        roles[me] = role
        for q in reversed(chain):
            role = roles.get(q) or _role(q, me, role)
            roles[q] = role
        return roles[pid]

    usage: dict[str, int] = {}
    for pid, (own, reaped) in times.items():
        role = role_of(pid)
        if role is None:
            continue
        usage[role] = usage.get(role, 0) + own
        # reaped children: this process's are the load generators (wrk, load clients)
        key = "load (reaped)" if pid == me else role
        usage[key] = usage.get(key, 0) + reaped
    return usage


def own_jiffies() -> int:
    return sum(own_usage().values())


def busy_during(fn: Any) -> tuple[Any, float, float]:
    """Run `fn()`; also return the machine's busy fraction while it ran, and the part of it
    used by other processes than this benchmark's ("foreign": other sessions' tests or
    benchmarks, which disturb the figures)."""
    out, info = usage_during(fn)
    return out, info["busy"], info["foreign_busy"]


def usage_during(fn: Any) -> tuple[Any, dict[str, Any]]:
    """Run `fn()`; return its result and {"busy", "foreign_busy", "cores"}: the machine's
    busy fraction, the part used by processes not of this benchmark, and the cores (CPU
    seconds per second) each role of this benchmark used."""
    t0, i0 = _proc_stat()
    u0, w0 = own_usage(), time.monotonic()
    out = fn()
    t1, i1 = _proc_stat()
    u1, w1 = own_usage(), time.monotonic()
    span = max(1, t1 - t0)
    busy = 1.0 - (i1 - i0) / span
    used = {k: u1.get(k, 0) - u0.get(k, 0) for k in set(u0) | set(u1)}
    foreign = max(0.0, busy - sum(used.values()) / span)
    hz = os.sysconf("SC_CLK_TCK")
    cores = {k: round(v / hz / (w1 - w0), 2) for k, v in sorted(used.items()) if v > 0}
    return out, {"busy": round(busy, 3), "foreign_busy": round(foreign, 3), "cores": cores}


def measured(
    label: str, fn: Any, attempts: int = 3, max_foreign: float = 0.08
) -> tuple[Any, dict[str, Any]]:
    """wait_quiet(), then `fn()`; re-run (up to `attempts` times) while other processes used
    more than `max_foreign` of the machine during the run. Returns the last result and
    {"busy", "foreign_busy", "cores", "attempts", "disturbed"}."""
    for attempt in range(1, attempts + 1):
        quiet(label)
        out, info = usage_during(fn)
        foreign = info["foreign_busy"]
        info.update(attempts=attempt, disturbed=foreign > max_foreign)
        if foreign <= max_foreign:
            return out, info
        log(
            f"  [{label}] disturbed: other processes used {foreign:.0%} of the machine "
            f"(attempt {attempt}/{attempts})" + ("; re-running" if attempt < attempts else "")
        )
    return out, info


def clean(x: Any) -> Any:
    """`x` with every NaN float replaced by None (JSON has no NaN)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    return x


def json_line(result: dict[str, Any]) -> str:
    """The result as one line of strict JSON."""
    return json.dumps(clean(result), allow_nan=False, separators=(",", ":"))


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (as the gateway and wrk_load's clients use)."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of `name` whose labels include `labels`, in a Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m is None or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in (labels or {}).items()):
            total += float(m.group(3))
    return total


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def r2(x: float) -> float:
    return round(x, 2)


# ---------------------------------------------------------------- the benchmark

P50_TARGET_MS, P99_TARGET_MS = 1.5, 4.0  # (a) open loop, non-streaming
TTFT_P50_TARGET_MS, TTFT_P99_TARGET_MS = 2.0, 5.0  # (b) streams


def _ol_row(r: OpenLoopResult) -> dict[str, Any]:
    return {
        "p50_ms": r2(r.latency.p50),
        "p99_ms": r2(r.latency.p99),
        "p999_ms": r2(r.latency.p999),
        "max_ms": r2(r.latency.max),
        "service_p50_ms": r2(r.service.p50),
        "service_p99_ms": r2(r.service.p99),
        "client_lag_p99_ms": r2(r.schedule_lag.p99),
        "sent": r.sent,
        "completed_2xx": r.completed,
        "send_rate": round(r.send_rate, 1),
        "errors": r.errors,
        "statuses": {str(k): v for k, v in r.status_counts.items()},
        "ok": r.ok,
    }


def _summary(rounds: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    return {k: r2(median([x[k] for x in rounds])) for k in keys}


def part_a(tmp: Path, args: argparse.Namespace, cpus: set[int] | None) -> dict[str, Any]:
    body = chat_body(max_tokens=16)
    fake_args = ["--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16"]
    rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
    with fake_llm(tmp, *fake_args, name="fake-a") as up, gateway(tmp, up, name="gw-a") as gw:
        targets = {"direct": up, "gateway": gw["url"]}
        # warm both paths (connection pools, the limiter's latency baseline)
        for url in targets.values():
            open_loop(url, body, rate=args.rate, duration=2, warmup=0.5, cpus=cpus)
        for i in range(args.rounds):
            for name, url in targets.items():
                res, info = measured(
                    f"a/{name}",
                    lambda url=url: open_loop(
                        url,
                        body,
                        rate=args.rate,
                        duration=args.duration,
                        warmup=1.0,
                        cpus=cpus,
                    ),
                )
                row = {**_ol_row(res), **info}
                rounds[name].append(row)
                log(
                    f"  (a) round {i + 1} {name:8} {res.short()}  [cpu {info['busy']:.0%} busy, "
                    f"{info['foreign_busy']:.0%} others]"
                )
    keys = ("p50_ms", "p99_ms", "p999_ms", "service_p50_ms", "service_p99_ms")
    direct, through = _summary(rounds["direct"], keys), _summary(rounds["gateway"], keys)
    added_p50 = r2(through["p50_ms"] - direct["p50_ms"])
    added_p99 = r2(through["p99_ms"] - direct["p99_ms"])
    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "direct": direct,
        "gateway": through,
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "target_added_p50_ms": P50_TARGET_MS,
        "target_added_p99_ms": P99_TARGET_MS,
        "meets_targets": added_p50 <= P50_TARGET_MS and added_p99 <= P99_TARGET_MS,
        "all_ok": all(r["ok"] for rs in rounds.values() for r in rs),
        "runs": rounds,
    }


# ---------------------------------------------------------------- (b): a TTFT client


async def _ttft_client(cfg: dict[str, Any]) -> dict[str, Any]:
    """`streams` concurrent streaming chat completions, each stream sending its next
    request as soon as the previous one ended, for warmup + duration seconds. The streams
    start spread over the first 0.5 s (200 simultaneous connects would otherwise be
    measured as everybody's TTFT). Rows: (start since t0 s, ttft s, total s, status)."""
    import aiohttp

    url, headers, body = cfg["url"], cfg["headers"], cfg["body"].encode()
    rows: list[tuple[float, float, float, int]] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=cfg["streams"])
    tmo = aiohttp.ClientTimeout(total=cfg["timeout"])
    nan = math.nan
    async with aiohttp.ClientSession(connector=connector, timeout=tmo) as session:
        t0 = time.perf_counter()
        end = t0 + cfg["warmup"] + cfg["duration"]

        async def stream(k: int) -> None:
            await asyncio.sleep(0.5 * k / cfg["streams"])
            while time.perf_counter() < end:
                start = time.perf_counter()
                ttft = nan
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        if r.status != 200:
                            await r.read()
                            rows.append((start - t0, nan, nan, r.status))
                            continue
                        async for line in r.content:
                            if ttft == ttft or not line.startswith(b"data:"):
                                continue  # found already, or not an event: drain
                            data = line[5:].strip()
                            if data == b"[DONE]":
                                continue
                            try:
                                choices = json.loads(data).get("choices") or [{}]
                            except ValueError:
                                continue
                            if (choices[0].get("delta") or {}).get("content"):
                                ttft = time.perf_counter() - start
                        rows.append((start - t0, ttft, time.perf_counter() - start, 200))
                except Exception as e:
                    kind = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
                    errors[kind] = errors.get(kind, 0) + 1

        await asyncio.gather(*(stream(k) for k in range(cfg["streams"])))
    return {"rows": rows, "errors": errors}


def _ttft_worker(cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    if cfg.get("cpus"):
        os.sched_setaffinity(0, set(cfg["cpus"]))
    loop = new_loop()
    if cfg.get("client", "lean") == "lean":
        from stream_client import run_streams

        client = run_streams(cfg)
    else:
        client = _ttft_client(cfg)
    try:
        out = loop.run_until_complete(client)
    finally:
        loop.close()
    # a file, not stdout: the event loop may leave stdout non-blocking, and a pipe then
    # takes only the first 64 KiB of a large write at exit
    Path(cfg["out"]).write_text(json.dumps(out))


def ttft_streams(
    url: str,
    *,
    streams: int,
    duration: float,
    warmup: float,
    tokens: int,
    cpus: set[int] | None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    client: str = "lean",
) -> dict[str, Any]:
    """Run the TTFT client (`lean`: bench/stream_client.py; `aiohttp`: `_ttft_client`)
    in its own process; figures of the requests started after `warmup` ("measured") and
    of those started before ("warmup")."""
    cfg = {
        "url": chat_url(url),
        "headers": auth_headers(extra=headers),
        "body": json.dumps(chat_body(max_tokens=tokens, stream=True)),
        "streams": streams,
        "duration": duration,
        "warmup": warmup,
        "timeout": timeout,
        "cpus": sorted(cpus) if cpus else None,
        "client": client,
    }
    with tempfile.TemporaryDirectory(prefix="ttft-") as tmp:
        cfg["out"] = str(Path(tmp) / "rows.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), "_ttft", json.dumps(cfg)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=warmup + duration + timeout + 60
        )
        if proc.returncode != 0:
            raise RuntimeError(f"TTFT client exited {proc.returncode}: {proc.stderr[-2000:]}")
        out = json.loads(Path(cfg["out"]).read_text())

    def figures(rows: list[list[float]]) -> dict[str, Any]:
        ok = [r for r in rows if r[3] == 200]
        ttft = Percentiles.of(r[1] * 1000 for r in ok if r[1] == r[1])
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[str(int(r[3]))] = statuses.get(str(int(r[3])), 0) + 1
        return {
            "requests": len(rows),
            "ttft_p50_ms": r2(ttft.p50),
            "ttft_p90_ms": r2(ttft.p90),
            "ttft_p99_ms": r2(ttft.p99),
            "ttft_max_ms": r2(ttft.max),
            "total_p50_ms": r2(Percentiles.of(r[2] * 1000 for r in ok).p50),
            "no_content": sum(1 for r in ok if r[1] != r[1]),
            "statuses": statuses,
            "streams_per_s": round(len(rows) / max(duration, 1e-9), 1),
        }

    rows = out["rows"]
    measured_rows = [r for r in rows if r[0] >= warmup]
    res = figures(measured_rows)
    res["warmup"] = figures([r for r in rows if r[0] < warmup])
    res["errors"] = out["errors"]
    res["ok"] = (
        res["requests"] > 0
        and not out["errors"]
        and set(res["statuses"]) == {"200"}
        and res["no_content"] == 0
    )
    return res


def gateway_limit(gw_url: str) -> dict[str, float]:
    """The gateway's adaptive concurrency limit and in-flight count (its /metrics)."""
    _, body = http_get(f"{gw_url}/metrics", timeout=10)
    text = body.decode()
    return {
        "limit": metric(text, "slokit_gateway_concurrency_limit"),
        "in_flight": metric(text, "slokit_gateway_in_flight"),
    }


def _variant(
    name: str,
    targets: dict[str, str],
    gw_url: str,
    args: argparse.Namespace,
    cpus: set[int] | None,
    headers: dict[str, str],
    first_warmup: float,
) -> dict[str, Any]:
    """Direct and gateway runs of one stream shape, alternated `--stream-rounds` times."""
    rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
    cold: dict[str, Any] = {}
    for i in range(args.stream_rounds):
        for target, url in targets.items():
            # the gateway's first run starts from the limiter's initial limit: it gets
            # `first_warmup` s to learn the upstream (reported as the cold start)
            warm = first_warmup if (target == "gateway" and i == 0) else 2.0
            before = gateway_limit(gw_url)

            def go(url: str = url, warm: float = warm) -> dict[str, Any]:
                return ttft_streams(
                    url,
                    streams=args.streams,
                    duration=args.duration,
                    warmup=warm,
                    tokens=args.tokens,
                    cpus=cpus,
                    headers=headers,
                    client=args.client,
                )

            res, info = measured(f"b/{name}/{target}", go)
            row = {**res, **info, "warmup_s": warm}
            if target == "gateway":
                row["limit_before"] = before["limit"]
                row["limit_after"] = gateway_limit(gw_url)["limit"]
                if i == 0 and warm > 2.0:
                    cold = {**res["warmup"], "seconds": warm, "limit_after": row["limit_after"]}
            rounds[target].append(row)
            log(
                f"  (b) {name}, round {i + 1} {target:8} {res['requests']} streams "
                f"({res['streams_per_s']}/s), TTFT p50 {res['ttft_p50_ms']:.2f} p90 "
                f"{res['ttft_p90_ms']:.2f} p99 {res['ttft_p99_ms']:.2f} max "
                f"{res['ttft_max_ms']:.2f} ms; statuses {res['statuses']} errors "
                f"{res['errors'] or 'none'}"
                + (
                    f"; limit {row['limit_before']:.0f} -> {row['limit_after']:.0f}"
                    if target == "gateway"
                    else ""
                )
                + f"  [cpu {info['busy']:.0%} busy, {info['foreign_busy']:.0%} others; "
                f"cores {info['cores']}]"
            )
    keys = ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "ttft_max_ms", "total_p50_ms")
    keys += ("streams_per_s",)
    direct, through = _summary(rounds["direct"], keys), _summary(rounds["gateway"], keys)
    added_p50 = r2(through["ttft_p50_ms"] - direct["ttft_p50_ms"])
    added_p99 = r2(through["ttft_p99_ms"] - direct["ttft_p99_ms"])
    return {
        "direct": direct,
        "gateway": through,
        "added_ttft_p50_ms": added_p50,
        "added_ttft_p99_ms": added_p99,
        "meets_targets": added_p50 <= TTFT_P50_TARGET_MS and added_p99 <= TTFT_P99_TARGET_MS,
        "gateway_cold_start": cold,
        "all_ok": all(r["ok"] for rs in rounds.values() for r in rs),
        "runs": rounds,
    }


def part_b(tmp: Path, args: argparse.Namespace, cpus: set[int] | None) -> dict[str, Any]:
    fake_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", args.itl_ms]
    fake_args += ["--output-tokens", str(args.tokens), "--capacity", str(args.streams * 4)]
    fake_cpus = parse_cpus(args.fake_cpus)
    out: dict[str, Any] = {
        "streams": args.streams,
        "client": args.client,
        "fake_ttft_ms": args.ttft_ms,
        "fake_itl_ms": args.itl_ms,
        "output_tokens": args.tokens,
        "duration_s": args.duration,
        "rounds": args.stream_rounds,
        "target_added_ttft_p50_ms": TTFT_P50_TARGET_MS,
        "target_added_ttft_p99_ms": TTFT_P99_TARGET_MS,
        "cpus": {
            "load": sorted(cpus or []),
            "fake": sorted(fake_cpus or []),
            "gateway_workers": sorted(parse_cpus(args.gateway_cpus) or []),
        },
    }
    fake = fake_llm(tmp, *fake_args, name="fake-b", cpus=fake_cpus)
    with fake as up, gateway(tmp, up, name="gw-b", cpus=args.gateway_cpus) as gw:
        targets = {"direct": up, "gateway": gw["url"]}
        log(f"  short streams: ITL {args.itl_ms} ms")
        out.update(_variant("short", targets, gw["url"], args, cpus, {}, args.stream_warmup))
        if args.long_itl_ms > 0:
            log(f"  long streams: ITL {args.long_itl_ms:g} ms (x-fake-itl-ms)")
            long = _variant(
                "long",
                targets,
                gw["url"],
                args,
                cpus,
                {"x-fake-itl-ms": f"{args.long_itl_ms:g}"},
                0.0,
            )
            out["long_streams"] = {"fake_itl_ms": args.long_itl_ms, **long}
    return out


def table(result: dict[str, Any]) -> str:
    lines = []
    a, b = result.get("open_loop"), result.get("streams")
    if a:
        d, g = a["direct"], a["gateway"]
        lines += [
            f"(a) open loop, non-streaming, {a['rate']:,.0f} req/s, {a['duration_s']:.0f} s x "
            f"{a['rounds']} rounds (medians), latency from the scheduled send",
            f"    {'':10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}",
            f"    {'direct':10} {d['p50_ms']:8.2f} {d['p99_ms']:8.2f} {d['p999_ms']:9.2f}",
            f"    {'gateway':10} {g['p50_ms']:8.2f} {g['p99_ms']:8.2f} {g['p999_ms']:9.2f}",
            f"    {'added':10} {a['added_p50_ms']:8.2f} {a['added_p99_ms']:8.2f}"
            f"    targets <= {P50_TARGET_MS} / <= {P99_TARGET_MS} ms: "
            f"{'met' if a['meets_targets'] else 'NOT met'}; all 2xx: {a['all_ok']}",
        ]
    if b:
        lines.append(
            f"(b) {b['streams']} concurrent streams, fake TTFT {b['fake_ttft_ms']:g} ms, "
            f"{b['output_tokens']} tokens, {b['duration_s']:.0f} s x {b['rounds']} round(s), "
            f"TTFT from each request's send"
        )
        pins = b["cpus"]
        lines.append(
            "    CPUs: "
            + ", ".join(
                f"{who.replace('_', ' ')} {','.join(map(str, c)) if c else 'any'}"
                for who, c in pins.items()
            )
            + (", store the others" if pins["gateway_workers"] else "")
        )
        lines.append(
            f"    {'':26} {'streams/s':>9} {'TTFT p50':>9} {'TTFT p99':>9} {'TTFT max':>9}"
        )
        variants = [(f"ITL {b['fake_itl_ms']} ms", b)]
        if b.get("long_streams"):
            ls = b["long_streams"]
            variants.append((f"ITL {ls['fake_itl_ms']:g} ms", ls))
        for label, v in variants:
            for who in ("direct", "gateway"):
                x = v[who]
                lines.append(
                    f"    {label + ', ' + who:26} {x['streams_per_s']:9.1f} "
                    f"{x['ttft_p50_ms']:9.2f} {x['ttft_p99_ms']:9.2f} {x['ttft_max_ms']:9.2f}"
                )
            lines.append(
                f"    {label + ', added':26} {'':9} {v['added_ttft_p50_ms']:9.2f} "
                f"{v['added_ttft_p99_ms']:9.2f}    targets <= {TTFT_P50_TARGET_MS} / <= "
                f"{TTFT_P99_TARGET_MS} ms: {'met' if v['meets_targets'] else 'NOT met'}; "
                f"all 200: {v['all_ok']}"
            )
        c = b["gateway_cold_start"]
        if c:
            lines.append(
                f"    gateway cold start (first {c['seconds']:.0f} s, the concurrency limit "
                f"learning from its initial value; not in the figures above): TTFT p50 "
                f"{c['ttft_p50_ms']:.1f} p99 {c['ttft_p99_ms']:.1f} ms, limit then "
                f"{c['limit_after']:.0f}"
            )
    parts = [a, b, b.get("long_streams") if b else None]
    rs = [r for rr in parts if rr for runs in rr["runs"].values() for r in runs]
    if any(r["disturbed"] for r in rs):
        lines.append("NOTE: some run was disturbed by other processes (foreign_busy > 8%)")
    return "\n".join(lines)


def parse_cpus(text: str) -> set[int] | None:
    return {int(c) for c in text.split(",")} if text else None


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_ttft"]:
        _ttft_worker(argv[1])
        return
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--part", choices=("a", "b", "both"), default="both")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--rounds", type=int, default=2, help="direct/gateway alternations")
    ap.add_argument("--rate", type=float, default=1000.0, help="(a) requests/s")
    ap.add_argument("--streams", type=int, default=200, help="(b) concurrent streams")
    ap.add_argument("--ttft-ms", type=float, default=50.0, help="(b) the fake's constant TTFT")
    ap.add_argument(
        "--itl-ms",
        default="uniform:10:30",
        help="(b) the fake's ITL (varied a little so that the streams do not move in lockstep)",
    )
    ap.add_argument(
        "--long-itl-ms",
        type=float,
        default=100.0,
        help="(b) also measure long streams with this constant ITL (0: skip)",
    )
    ap.add_argument("--stream-rounds", type=int, default=1, help="(b) direct/gateway alternations")
    ap.add_argument(
        "--stream-warmup",
        type=float,
        default=20.0,
        help="(b) seconds of load before the first gateway measurement (limiter learning)",
    )
    ap.add_argument("--tokens", type=int, default=16, help="(b) output tokens per stream")
    ap.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="(b) the TTFT client: lean (bench/stream_client.py) or aiohttp (the previous one)",
    )
    ap.add_argument("--cpus", default="1", help="pin the load generator ('' for none)")
    ap.add_argument(
        "--gateway-cpus",
        default="0",
        help="(b) the gateway's `--cpus`: its worker's CPU, the store on the others ('' for "
        "none: every process floats)",
    )
    ap.add_argument(
        "--fake-cpus", default="1", help="(b) pin fake-llm, direct runs too ('' for none)"
    )
    args = ap.parse_args(argv)
    cpus = parse_cpus(args.cpus)
    result: dict[str, Any] = {"benchmark": "gateway_latency", "load_cpus": sorted(cpus or [])}
    result["busy_at_start"] = round(cpu_busy(1.0), 2)
    with tempfile.TemporaryDirectory(prefix="gw-latency-") as t:
        tmp = Path(t)
        if args.part in ("a", "both"):
            log("(a) open loop, non-streaming")
            result["open_loop"] = part_a(tmp, args, cpus)
        if args.part in ("b", "both"):
            log(f"(b) {args.streams} concurrent streams")
            result["streams"] = part_b(tmp, args, cpus)
    if args.json:
        print(json_line(result))
    else:
        print(table(result))


if __name__ == "__main__":
    main()
