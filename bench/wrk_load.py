"""Load generators for OpenAI-style endpoints: wrk (closed loop), open loop at a fixed rate, TTFT.

Three tools, each a function returning a dataclass (latencies in milliseconds) and a CLI verb:

``run_wrk(url, body, ...) -> WrkResult``
    Closed-loop throughput with Debian's ``wrk`` (/usr/bin/wrk): POSTs a JSON body with the given
    headers over `connections` keep-alive connections for `duration` seconds. The Lua script is
    generated in a temp dir; its ``done()`` prints one JSON line with requests, duration,
    latency:percentile() values (microseconds), wrk's error counts by kind (connect, read,
    write, status = HTTP status > 399, timeout), and, unless ``count_status=False``, every
    response's status code (a ``response()`` hook, which costs wrk some CPU), so ``non_2xx`` is
    exact. Throughput is ``rps``; ``ok`` says no error and every response 2xx.

``open_loop(url, body, rate, duration, ...) -> OpenLoopResult``
    Added latency at a fixed rate (e.g. 1,000 requests/s): wrk can't hold a rate and wrk2 is not
    in Debian, so this is an asyncio+aiohttp client (uvloop when installed) run in separate
    processes (``procs``, each sending ``rate/procs``). Sends are scheduled on a fixed timetable,
    independent of responses (open loop); ``latency`` is measured from each request's scheduled
    time (so a stalled server or client is charged, no coordinated omission) and ``service``
    from its actual send. ``schedule_lag`` is the client's own lateness; ``send_rate`` and
    ``achieved_rate`` show how close it came to the target. The first ``warmup`` seconds are
    sent but not counted.

``ttft_load(url, body, streams, duration, ...) -> TtftResult``
    `streams` concurrent SSE chat completions (e.g. 200) held by one asyncio+aiohttp client in a
    separate process; each stream loops request after request until `duration` is over (at least
    one each) and records the time to the first chunk whose ``choices[0].delta.content`` is
    non-empty (``ttft``), to the first byte of the body (``ttfb``) and to the end (``total``).

``chat_body(...)`` builds the request body, ``auth_headers(key)`` the headers, ``chat_url(base)``
the endpoint. ``wait_quiet()`` waits until the machine is idle (``cpu_busy()`` from /proc/stat):
other sessions benchmark on this same 2-core machine, and a run next to theirs is worthless.
``cpus`` (a set of core ids) pins the load generator with sched_setaffinity, to keep it off the
server's core.

CLI (from /work/main)::

    .venv/bin/python bench/wrk_load.py wrk --url http://127.0.0.1:9000 -d 10 -c 64
    .venv/bin/python bench/wrk_load.py open-loop --url http://127.0.0.1:9000 --rate 1000 -d 10
    .venv/bin/python bench/wrk_load.py ttft --url http://127.0.0.1:9000 --streams 200 -d 10

``--url`` may be a base URL (``/v1/chat/completions`` is appended) or the full endpoint;
``--key`` adds ``Authorization: Bearer``; ``--json`` prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRK = "/usr/bin/wrk"
MARK = "WRK_JSON "
WRK_ERRORS = ("connect", "read", "write", "status", "timeout")


# ---------------------------------------------------------------- request pieces


def chat_url(base: str) -> str:
    """The chat completions endpoint of `base`: a bare host or a ``/v1`` base gets
    ``/v1/chat/completions`` completed; a URL naming any other path is left alone."""
    base = base.rstrip("/")
    path = urlsplit(base).path
    if path == "":
        return f"{base}/v1/chat/completions"
    if path == "/v1":
        return f"{base}/chat/completions"
    return base


def chat_body(
    model: str = "gpt-4o-mini",
    content: str = "Say hello.",
    max_tokens: int = 16,
    stream: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


def auth_headers(key: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(extra or {})
    return headers


def _body_bytes(body: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- statistics


@dataclass
class Percentiles:
    """Latency figures in milliseconds."""

    count: int = 0
    mean: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    p999: float = math.nan
    max: float = math.nan

    @classmethod
    def of(cls, values_ms: Iterable[float]) -> Percentiles:
        xs = sorted(values_ms)
        if not xs:
            return cls()

        def q(p: float) -> float:  # nearest rank, as wrk and HdrHistogram report
            return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]

        return cls(len(xs), sum(xs) / len(xs), q(50), q(90), q(99), q(99.9), xs[-1])

    def short(self) -> str:
        return (
            f"p50 {self.p50:.2f} p90 {self.p90:.2f} p99 {self.p99:.2f} "
            f"max {self.max:.2f} ms (n={self.count})"
        )


def cpu_busy(interval: float = 1.0) -> float:
    """The machine's busy fraction (all cores, 0..1) over `interval` seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(threshold: float = 0.15, timeout: float = 300.0, interval: float = 1.0) -> float:
    """Wait until the machine is below `threshold` busy (another benchmark on this shared 2-core
    machine skews every figure); returns the last busy fraction, even when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy(interval)
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy(interval)
    return busy


def _pin(cpus: set[int] | None) -> Any:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# ---------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    url: str
    threads: int
    connections: int
    duration_s: float  # as wrk measured it
    requests: int
    rps: float
    bytes: int
    latency: Percentiles  # ms, from wrk's histogram
    errors: dict[str, int]  # connect, read, write, status (HTTP > 399), timeout
    non_2xx: int  # exact when status_counts is filled, else wrk's "status" errors
    status_counts: dict[int, int] | None
    raw: str = field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and not any(self.errors.values())

    def short(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in self.errors.items() if v) or "none"
        return (
            f"{self.rps:,.0f} req/s ({self.requests} in {self.duration_s:.1f}s, "
            f"{self.connections} conns); latency {self.latency.short()}; errors {errs}; "
            f"non-2xx {self.non_2xx}; statuses {self.status_counts}"
        )


_LUA_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._/:-")


def _lua_str(s: str) -> str:
    """A Lua string literal of `s`, every byte outside [A-Za-z0-9 ._/:-] as a decimal escape."""
    return '"' + "".join(chr(b) if b in _LUA_SAFE else f"\\{b}" for b in s.encode()) + '"'


def wrk_script(body_path: Path, headers: Mapping[str, str], count_status: bool = True) -> str:
    lines = [
        'wrk.method = "POST"',
        f"local f = assert(io.open({_lua_str(str(body_path))}, 'rb'))",
        'wrk.body = f:read("*a")',
        "f:close()",
    ]
    lines += [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items()]
    lines.append(
        """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
"""
    )
    if count_status:
        lines.append(
            """
function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""
        )
    lines.append(
        r"""
function done(summary, latency, requests)
  local e = summary.errors
  local out = {}
  local function add(k, v) out[#out + 1] = string.format('"%s":%s', k, v) end
  add("duration_us", string.format("%.0f", summary.duration))
  add("requests", string.format("%.0f", summary.requests))
  add("bytes", string.format("%.0f", summary.bytes))
  add("errors", string.format(
    '{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
    e.connect, e.read, e.write, e.status, e.timeout))
  local lat = {}
  for _, p in ipairs({50, 90, 99, 99.9}) do
    lat[#lat + 1] = string.format('"%s":%.0f', tostring(p), latency:percentile(p))
  end
  lat[#lat + 1] = string.format('"min":%.0f,"max":%.0f,"mean":%.3f,"stdev":%.3f',
    latency.min, latency.max, latency.mean, latency.stdev)
  add("latency_us", "{" .. table.concat(lat, ",") .. "}")
  local merged, any = {}, false
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      any = true
      for code, n in pairs(s) do merged[code] = (merged[code] or 0) + n end
    end
  end
  if any then
    local st = {}
    for code, n in pairs(merged) do st[#st + 1] = string.format('"%d":%d', code, n) end
    add("statuses", "{" .. table.concat(st, ",") .. "}")
  end
  io.write("WRK_JSON {" .. table.concat(out, ",") .. "}\n")
end
"""
    )
    return "\n".join(lines)


def parse_wrk(stdout: str, url: str = "", threads: int = 0, connections: int = 0) -> WrkResult:
    """The WrkResult of a wrk run whose script is `wrk_script`'s (its WRK_JSON line)."""
    line = next((x for x in stdout.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"no {MARK.strip()} line in wrk output:\n{stdout}")
    d = json.loads(line[len(MARK) :])
    lat = d["latency_us"]
    duration = d["duration_us"] / 1e6
    requests = int(d["requests"])
    statuses = {int(k): v for k, v in d["statuses"].items()} if "statuses" in d else None
    if statuses is not None:
        non_2xx = sum(n for code, n in statuses.items() if not 200 <= code < 300)
    else:
        non_2xx = d["errors"]["status"]
    return WrkResult(
        url=url,
        threads=threads,
        connections=connections,
        duration_s=duration,
        requests=requests,
        rps=requests / duration if duration else 0.0,
        bytes=int(d["bytes"]),
        latency=Percentiles(
            count=requests,
            mean=lat["mean"] / 1000,
            p50=lat["50"] / 1000,
            p90=lat["90"] / 1000,
            p99=lat["99"] / 1000,
            p999=lat["99.9"] / 1000,
            max=lat["max"] / 1000,
        ),
        errors={k: int(d["errors"][k]) for k in WRK_ERRORS},
        non_2xx=non_2xx,
        status_counts=statuses,
        raw=stdout,
    )


def run_wrk(
    url: str,
    body: bytes | str | Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
    duration: float = 10.0,
    threads: int = 1,
    connections: int = 32,
    timeout: float = 10.0,
    count_status: bool = True,
    cpus: set[int] | None = None,
) -> WrkResult:
    """Run wrk for `duration` seconds, POSTing `body` (default `chat_body()`) to `url`."""
    url = chat_url(url)
    hdrs = dict(headers) if headers is not None else auth_headers(key)
    connections = max(connections, threads)
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(_body_bytes(body if body is not None else chat_body()))
        script = Path(tmp) / "post.lua"
        script.write_text(wrk_script(body_path, hdrs, count_status))
        cmd = [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s"]
        cmd += ["--timeout", f"{max(1, round(timeout))}s", "-s", str(script), url]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, preexec_fn=_pin(cpus), timeout=duration + 60
        )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr}\n{proc.stdout}")
    return parse_wrk(proc.stdout, url, threads, connections)


# ---------------------------------------------------------------- asyncio clients (workers)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _err_kind(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    return type(e).__name__


async def _open_loop_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, rate, duration, warmup = cfg["url"], cfg["rate"], cfg["duration"], cfg["warmup"]
    body = cfg["body"].encode()
    headers = cfg["headers"]
    n_total = int((duration + warmup) * rate)
    rows: list[tuple[float, float, float, int]] = []  # intended, sent, done, status
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=cfg["max_conns"], force_close=False)
    tmo = aiohttp.ClientTimeout(total=cfg["timeout"])
    async with aiohttp.ClientSession(
        connector=connector, timeout=tmo, skip_auto_headers=("User-Agent",)
    ) as session:
        # start together with the other workers, at a common wall-clock time
        await asyncio.sleep(max(0.0, cfg["start_at"] - time.time()))
        t0 = time.perf_counter() + cfg["phase"]
        cut = t0 + warmup  # requests scheduled before are sent but not counted
        tasks: set[asyncio.Task[None]] = set()

        async def one(intended: float) -> None:
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except asyncio.CancelledError:
                return
            except Exception as e:
                if intended >= cut:
                    kind = _err_kind(e)
                    errors[kind] = errors.get(kind, 0) + 1
                status = 0
            rows.append((intended, sent, time.perf_counter(), status))

        i = 0
        while i < n_total:
            now = time.perf_counter()
            due = min(n_total, int((now - t0) * rate) + 1)
            while i < due:
                t = asyncio.create_task(one(t0 + i / rate))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                i += 1
            nxt = t0 + i / rate
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
        if tasks:
            await asyncio.wait(tasks, timeout=cfg["timeout"] + 5)
        unfinished = len(tasks)
        for t in list(tasks):
            t.cancel()
        if unfinished:
            errors["unfinished"] = unfinished
            await asyncio.gather(*tasks, return_exceptions=True)
    kept = [r for r in rows if r[0] >= cut]
    in_window = n_total - min(n_total, math.ceil(warmup * rate))
    return {"rows": kept, "errors": errors, "scheduled": in_window}


async def _ttft_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, headers, body = cfg["url"], cfg["headers"], cfg["body"].encode()
    rows: list[tuple[float, float, float, int, int]] = []  # ttfb, ttft, total, chunks, status
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=cfg["streams"])
    tmo = aiohttp.ClientTimeout(total=cfg["timeout"])
    async with aiohttp.ClientSession(connector=connector, timeout=tmo) as session:
        deadline = time.perf_counter() + cfg["duration"]

        async def stream() -> None:
            first = True
            while first or time.perf_counter() < deadline:
                first = False
                start = time.perf_counter()
                ttfb: float | None = None
                ttft: float | None = None
                chunks = 0
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        if r.status != 200:
                            await r.read()
                            rows.append((math.nan, math.nan, math.nan, 0, r.status))
                            continue
                        async for line in r.content:
                            if ttfb is None:
                                ttfb = time.perf_counter() - start
                            if not line.startswith(b"data:"):
                                continue
                            chunks += 1
                            if ttft is not None:  # found already: just drain the stream
                                continue
                            data = line[5:].strip()
                            if data == b"[DONE]":
                                continue
                            try:
                                choices = json.loads(data).get("choices") or [{}]
                            except ValueError:
                                continue
                            if (choices[0].get("delta") or {}).get("content"):
                                ttft = time.perf_counter() - start
                        end = time.perf_counter() - start
                        nan = math.nan
                        rows.append((ttfb or nan, ttft or nan, end, chunks, 200))
                except Exception as e:
                    kind = _err_kind(e)
                    errors[kind] = errors.get(kind, 0) + 1

        await asyncio.gather(*(stream() for _ in range(cfg["streams"])))
    return {"rows": rows, "errors": errors}


def _worker_main(kind: str, cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    if cfg.get("cpus"):
        os.sched_setaffinity(0, set(cfg["cpus"]))
    fn = _open_loop_worker if kind == "open-loop" else _ttft_worker
    loop = _new_loop()
    try:
        out = loop.run_until_complete(fn(cfg))
    finally:
        loop.close()
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


def _spawn(kind: str, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", kind, json.dumps(cfg)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _collect(procs: Sequence[subprocess.Popen[str]], limit: float) -> list[dict[str, Any]]:
    outs = []
    for p in procs:
        try:
            stdout, _ = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        if p.returncode != 0:
            raise RuntimeError(f"load worker exited {p.returncode}")
        outs.append(json.loads(stdout))
    return outs


# ---------------------------------------------------------------- open loop


@dataclass
class OpenLoopResult:
    url: str
    target_rate: float
    duration_s: float  # measured window (after warmup)
    procs: int
    sent: int  # requests scheduled in the window (those unanswered count in errors)
    completed: int  # answered 2xx
    send_rate: float  # sends/s actually achieved in the window
    achieved_rate: float  # 2xx completions/s, first send to last completion (>= window)
    latency: Percentiles  # ms, scheduled time -> response read (charges client lateness)
    service: Percentiles  # ms, actual send -> response read
    schedule_lag: Percentiles  # ms, actual send - scheduled time: the client's own lateness
    errors: dict[str, int]
    status_counts: dict[int, int]

    @property
    def ok(self) -> bool:
        return self.completed == self.sent and not self.errors

    def short(self) -> str:
        return (
            f"target {self.target_rate:,.0f}/s, sent {self.send_rate:,.1f}/s, "
            f"2xx {self.achieved_rate:,.1f}/s over {self.duration_s:.1f}s "
            f"({self.completed}/{self.sent}); latency {self.latency.short()}; "
            f"service p50 {self.service.p50:.2f} p99 {self.service.p99:.2f} ms; "
            f"lag p50 {self.schedule_lag.p50:.2f} p99 {self.schedule_lag.p99:.2f} "
            f"max {self.schedule_lag.max:.2f} ms; errors {self.errors or 'none'}; "
            f"statuses {self.status_counts}"
        )


def open_loop(
    url: str,
    body: bytes | str | Mapping[str, Any] | None = None,
    *,
    rate: float = 1000.0,
    duration: float = 10.0,
    warmup: float = 1.0,
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
    procs: int = 1,
    max_conns: int = 256,
    timeout: float = 10.0,
    cpus: set[int] | None = None,
) -> OpenLoopResult:
    """Send `rate` requests/s for `warmup` + `duration` seconds, open loop, from `procs`
    processes; report the `duration` window after the warmup."""
    url = chat_url(url)
    hdrs = dict(headers) if headers is not None else auth_headers(key)
    payload = _body_bytes(body if body is not None else chat_body()).decode()
    start_at = time.time() + 1.5 + 0.2 * procs  # every worker imported and waiting
    per = rate / procs
    workers = [
        _spawn(
            "open-loop",
            {
                "url": url,
                "rate": per,
                "duration": duration,
                "warmup": warmup,
                "body": payload,
                "headers": hdrs,
                "max_conns": max(1, max_conns // procs),
                "timeout": timeout,
                "start_at": start_at,
                "phase": k / rate,  # interleave the workers' timetables
                "cpus": sorted(cpus) if cpus else None,
            },
        )
        for k in range(procs)
    ]
    outs = _collect(workers, duration + warmup + timeout + 60)
    rows = [r for o in outs for r in o["rows"]]
    errors: dict[str, int] = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    statuses: dict[int, int] = {}
    for r in rows:
        statuses[r[3]] = statuses.get(r[3], 0) + 1
    statuses.pop(0, None)  # transport errors, counted in `errors`
    ok = [r for r in rows if 200 <= r[3] < 300]
    sends = sorted(r[1] for r in rows)
    window = duration
    send_rate = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else 0.0
    # completions over first send -> last completion: falls below the target when the server
    # (or the client) can't keep up and responses pile up past the window
    span = max(r[2] for r in ok) - sends[0] if ok else 0.0
    achieved = len(ok) / max(span, window) if ok else 0.0
    return OpenLoopResult(
        url=url,
        target_rate=rate,
        duration_s=window,
        procs=procs,
        sent=sum(o["scheduled"] for o in outs),
        completed=len(ok),
        send_rate=send_rate,
        achieved_rate=achieved,
        latency=Percentiles.of((r[2] - r[0]) * 1000 for r in ok),
        service=Percentiles.of((r[2] - r[1]) * 1000 for r in ok),
        schedule_lag=Percentiles.of((r[1] - r[0]) * 1000 for r in rows),
        errors=errors,
        status_counts=statuses,
    )


# ---------------------------------------------------------------- TTFT


@dataclass
class TtftResult:
    url: str
    streams: int
    duration_s: float
    requests: int  # streams completed with 200
    ttft: Percentiles  # ms to the first chunk with non-empty delta.content
    ttfb: Percentiles  # ms to the first line of the body
    total: Percentiles  # ms to the end of the stream
    chunks_mean: float
    no_content: int  # 200 streams without any content chunk
    errors: dict[str, int]
    status_counts: dict[int, int]

    @property
    def ok(self) -> bool:
        bad = sum(n for code, n in self.status_counts.items() if code != 200)
        return self.requests > 0 and not self.errors and not bad and not self.no_content

    def short(self) -> str:
        return (
            f"{self.requests} streams ({self.streams} concurrent, {self.duration_s:.0f}s): "
            f"TTFT {self.ttft.short()}; total p50 {self.total.p50:.1f} p99 {self.total.p99:.1f} "
            f"ms; {self.chunks_mean:.1f} chunks; errors {self.errors or 'none'}; "
            f"statuses {self.status_counts}"
        )


def ttft_load(
    url: str,
    body: bytes | str | Mapping[str, Any] | None = None,
    *,
    streams: int = 200,
    duration: float = 10.0,
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
    timeout: float = 60.0,
    cpus: set[int] | None = None,
) -> TtftResult:
    """Hold `streams` concurrent streaming chat completions for `duration` seconds."""
    url = chat_url(url)
    hdrs = dict(headers) if headers is not None else auth_headers(key)
    payload = _body_bytes(body if body is not None else chat_body(stream=True)).decode()
    cfg = {
        "url": url,
        "streams": streams,
        "duration": duration,
        "body": payload,
        "headers": hdrs,
        "timeout": timeout,
        "cpus": sorted(cpus) if cpus else None,
    }
    (out,) = _collect([_spawn("ttft", cfg)], duration + timeout + 60)
    rows = out["rows"]
    statuses: dict[int, int] = {}
    for r in rows:
        statuses[r[4]] = statuses.get(r[4], 0) + 1
    done = [r for r in rows if r[4] == 200]
    with_content = [r for r in done if r[1] == r[1]]
    return TtftResult(
        url=url,
        streams=streams,
        duration_s=duration,
        requests=len(done),
        ttft=Percentiles.of(r[1] * 1000 for r in with_content),
        ttfb=Percentiles.of(r[0] * 1000 for r in done if r[0] == r[0]),
        total=Percentiles.of(r[2] * 1000 for r in done),
        chunks_mean=sum(r[3] for r in done) / len(done) if done else 0.0,
        no_content=len(done) - len(with_content),
        errors=out["errors"],
        status_counts=statuses,
    )


# ---------------------------------------------------------------- CLI


def _as_json(result: Any) -> str:
    d = asdict(result)
    d.pop("raw", None)
    d["ok"] = result.ok
    return json.dumps(d, indent=2, default=str)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        _worker_main(argv[1], argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="base URL or full endpoint")
        p.add_argument("--key", help="bearer token")
        p.add_argument("--model", default="gpt-4o-mini")
        p.add_argument("--max-tokens", type=int, default=16)
        p.add_argument("-d", "--duration", type=float, default=10.0)
        p.add_argument("--cpus", help="pin the load generator, e.g. 1 or 0,1")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    w = sub.add_parser("wrk", help="closed-loop throughput with wrk")
    common(w)
    w.add_argument("-t", "--threads", type=int, default=1)
    w.add_argument("-c", "--connections", type=int, default=32)
    w.add_argument("--no-status", action="store_true", help="skip per-status counting")
    o = sub.add_parser("open-loop", help="fixed-rate open-loop latency")
    common(o)
    o.add_argument("--rate", type=float, default=1000.0)
    o.add_argument("--warmup", type=float, default=1.0)
    o.add_argument("--procs", type=int, default=1)
    o.add_argument("--max-conns", type=int, default=256)
    s = sub.add_parser("ttft", help="concurrent streams, time to first token")
    common(s)
    s.add_argument("--streams", type=int, default=200)
    args = ap.parse_args(argv)
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    stream = args.cmd == "ttft"
    body = chat_body(args.model, max_tokens=args.max_tokens, stream=stream)
    result: WrkResult | OpenLoopResult | TtftResult
    if args.cmd == "wrk":
        result = run_wrk(
            args.url,
            body,
            key=args.key,
            duration=args.duration,
            threads=args.threads,
            connections=args.connections,
            count_status=not args.no_status,
            cpus=cpus,
        )
    elif args.cmd == "open-loop":
        result = open_loop(
            args.url,
            body,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            key=args.key,
            procs=args.procs,
            max_conns=args.max_conns,
            cpus=cpus,
        )
    else:
        result = ttft_load(
            args.url, body, streams=args.streams, duration=args.duration, key=args.key, cpus=cpus
        )
    print(_as_json(result) if args.json else result.short())


if __name__ == "__main__":
    main()
