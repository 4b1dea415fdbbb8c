"""Deterministic, vectorised demo traffic: weeks of a realistic LLM API in Arrow batches.

`plan(end)` scripts a window of `days` days ending at `end` (floored to the minute) and
four incidents inside it; `generate(plan)` yields `(requests, scores)` Arrow tables, one
pair per chunk of minutes, in time order. Pure computation: no files, no clock.

The shape of the traffic (service `llm-api`):

- Arrivals: Poisson counts per UTC minute around `rate_per_minute` x daily curve
  (1 + 0.7 cos, trough 03:00 UTC at 0.3x, peak 15:00 UTC at 1.7x) x weekly factor
  (Saturday and Sunday 0.6x) x an hourly lognormal wobble, normalised so the long-run
  mean is `rate_per_minute`. Timestamps uniform within the minute, microseconds, sorted.
- Labels: routes chat 50%, completion 15%, embedding 20%, rag 15%. Two generation
  models, `llama-3.1-70b` (chat 75%, completion 70%, rag 90%) and `llama-3.1-8b` (the
  rest); embeddings run on their own model, `bge-large-en-v1.5`; `gpt-4o` appears only
  in the cost spike. Eight tenants with skewed shares, each on one tier, so tiers come
  out gold 20%, silver 50%, bronze 30%; `soylent` (bronze) is the noisy tenant. Regions
  us-east-1 65%, eu-west-1 35%. rag rows carry `attributes.prompt` (the prompt version).
- Tokens: lognormal per route (rag prompts ~3.5k tokens); embeddings have 0 output
  tokens and no ttft/tpot/itl.
- Latency grows with load (expected rate / mean rate): queue ~3 ms x load^3, ttft =
  (base + prefill per 1k input tokens) x lognormal x (1 + 0.08 load^3), tpot ~32 ms
  (70b) / 12 ms (8b) x lognormal x (1 + 0.04 load^3); latency = queue + ttft +
  tpot x (output_tokens - 1); itl_max >= tpot. 0.1% cold starts add 3-8 s to ttft.
- Outcomes: client_error 0.3% (400), rate_limited ~0.2% (429, mostly bronze and the
  noisy tenant, grows with load), shed (503) for bronze above 1.4x load, error 0.05%
  (500), timeout 0.02% (504, latency 60 s), cancelled 0.1% (499, partial output, billed).
  Rejected requests (400/429/503) have null tokens, queue and ttft and cost 0.
- Scores: 5% of ok chat/completion/rag requests get a judge score, `judge.faithfulness`
  on rag and `judge.helpfulness` on chat and completion (pass = value
  >= 0.7, 95% pass), another 2% get `user.thumbs` (value 1/0, 90% up).

Determinism: each UTC hour is drawn from its own generator seeded by `(seed, epoch
hour)`, so output depends on the seed, the plan and the rate, never on `chunk_minutes`.
Event ids are `d{seed}-{epoch minute}-{index in minute}`; score ids add `-j` / `-t`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.events.schema import ANNOTATION, ATTRIBUTES, OUTCOMES, REQUEST_EVENT, SCORE_EVENT, TS

__all__ = ["DemoPlan", "Incident", "generate", "load_shape", "plan"]

SERVICE = "llm-api"
ROUTES = ("chat", "completion", "embedding", "rag")
CHAT, COMPLETION, EMBEDDING, RAG = range(4)
MODELS = ("llama-3.1-70b", "llama-3.1-8b", "bge-large-en-v1.5", "gpt-4o")
TENANTS = ("acme", "umbrella", "hooli", "globex", "initech", "soylent", "wayne", "wonka")
TIERS = ("gold", "silver", "bronze")
REGIONS = ("us-east-1", "eu-west-1")
DEPLOYMENTS = ("v1.4.2", "v1.5.0")
PROMPTS = ("rag-v3", "rag-v4")
SCORE_NAMES = ("judge.faithfulness", "user.thumbs", "judge.helpfulness")
SCORE_SOURCES = ("judge", "feedback")

_ROUTE_CUM = np.array([0.50, 0.65, 0.85, 1.0])
_P_70B = np.array([0.75, 0.70, 0.0, 0.90])  # share of each route on llama-3.1-70b
_TENANT_CUM = np.cumsum([0.30, 0.12, 0.08, 0.12, 0.08, 0.14, 0.09, 0.07])
_TENANT_CUM[-1] = 1.0
_TENANT_TIER = np.array([1, 1, 1, 0, 0, 2, 2, 2], dtype=np.int8)  # tier index per tenant
_RATE_LIMIT = np.array([2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 8e-3, 2e-3, 2e-3])  # per tenant, x load
# Per route: input median, input sigma, input cap, output median, output sigma.
_IN_MU = np.log([600.0, 400.0, 150.0, 3500.0])
_IN_SIG = np.array([0.9, 0.8, 0.7, 0.5])
_IN_MAX = np.array([128_000, 32_000, 8_192, 128_000])
_OUT_MU = np.log([200.0, 150.0, 1.0, 300.0])
_OUT_SIG = np.array([0.7, 0.8, 0.0, 0.6])
# Per model: ttft base ms, prefill ms per 1k input tokens, tpot median ms, $/1M in, $/1M out.
_TTFT_BASE = np.array([250.0, 120.0, 25.0, 450.0])
_PREFILL = np.array([40.0, 10.0, 5.0, 20.0])
_TPOT = np.array([32.0, 12.0, 0.0, 18.0])
_PRICE_IN = np.array([0.88, 0.18, 0.02, 2.50])
_PRICE_OUT = np.array([0.88, 0.18, 0.0, 10.00])
# Outcome indices follow events.schema.OUTCOMES.
OK, ERROR, TIMEOUT, CANCELLED, SHED, RATE_LIMITED, CLIENT_ERROR = range(7)
_STATUS = np.array([200, 500, 504, 499, 503, 429, 400], dtype=np.int32)
_US_PER_MIN = 60_000_000
_WEEKLY_MEAN = (5 * 1.0 + 2 * 0.6) / 7
MIN_DAYS = 7
# kind: (fraction of the window, UTC time of day before jitter, length, labels, description)
_SCRIPT: dict[str, tuple[float, timedelta, timedelta, dict[str, str], str]] = {
    "cost_spike": (0.2, timedelta(hours=8), timedelta(hours=12), {"route": "completion",
                   "model": "gpt-4o"}, "model swap sends completion to gpt-4o: cost ~7x"),
    "quality_regression": (0.4, timedelta(hours=9), timedelta(days=1), {"route": "rag"},
                           "prompt change rag-v3 -> rag-v4: rag judge pass rate ~70%"),
    "latency_regression": (0.6, timedelta(hours=13), timedelta(hours=6), {"route": "chat",
                           "deployment": "v1.5.0"}, "deploy v1.5.0 triples chat ttft"),
    "outage": (0.85, timedelta(hours=14, minutes=20), timedelta(minutes=20), {},
               "inference pool unavailable: every request fails with 503"),
}  # fmt: skip
# (incident, at its end?, annotation kind, text, labels)
_NOTES: tuple[tuple[str, bool, str, str, dict[str, str]], ...] = (
    ("cost_spike", False, "config", "model swap: completion -> gpt-4o",
     {"route": "completion", "model": "gpt-4o"}),
    ("cost_spike", True, "config", "model swap reverted: completion -> llama-3.1-70b",
     {"route": "completion", "model": "llama-3.1-70b"}),
    ("quality_regression", False, "config", "prompt change: rag-v3 -> rag-v4",
     {"route": "rag", "prompt": "rag-v4"}),
    ("quality_regression", True, "config", "prompt reverted: rag-v4 -> rag-v3",
     {"route": "rag", "prompt": "rag-v3"}),
    ("latency_regression", False, "deploy", "deploy v1.5.0", {"deployment": "v1.5.0"}),
    ("latency_regression", True, "deploy", "rollback to v1.4.2", {"deployment": "v1.4.2"}),
    ("outage", False, "incident", "outage: inference pool unavailable, all requests 503", {}),
)  # fmt: skip


@dataclass(frozen=True)
class Incident:
    """One scripted incident; `labels` name the traffic it hits ({} for all)."""

    kind: str  # "outage" | "latency_regression" | "quality_regression" | "cost_spike"
    start: datetime
    end: datetime
    description: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoPlan:
    """The demo window, its incidents and the annotations (ANNOTATION schema) to store."""

    start: datetime
    end: datetime
    incidents: tuple[Incident, ...]
    annotations: pa.Table

    def incident(self, kind: str) -> Incident:
        return next(i for i in self.incidents if i.kind == kind)


def plan(end: datetime, days: int = 30, seed: int = 7) -> DemoPlan:
    """Script `days` days ending at `end` (aware; floored to the UTC minute).

    Incidents sit on whole minutes at fixed fractions of the window and fixed UTC hours
    (jittered 0-2 h by `seed`), so they are always inside it and never overlap:
    cost spike at 20% (08:00, 12 h), quality regression at 40% (09:00, 24 h), latency
    regression at 60% (13:00, 6 h), outage at 85% (14:20, 20 min).
    """
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
    if days < MIN_DAYS:
        raise ValueError(f"days must be >= {MIN_DAYS} to fit the scripted incidents, got {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    jitter = np.random.default_rng([seed, 0xD1A]).integers(0, 3, size=len(_SCRIPT))
    incidents = []
    for (kind, (fraction, time, length, labels, text)), j in zip(
        _SCRIPT.items(), jitter, strict=True
    ):
        day = (start + fraction * (end - start)).replace(hour=0, minute=0, second=0, microsecond=0)
        first = day + time + timedelta(hours=int(j))
        incidents.append(Incident(kind, first, first + length, text, dict(labels)))
    at = {i.kind: i for i in incidents}
    notes = [
        (at[k].end if at_end else at[k].start, kind, text, labels)
        for k, at_end, kind, text, labels in _NOTES
    ]
    notes.sort(key=lambda n: n[0])
    annotations = pa.table(
        {
            "event_id": [f"a{seed}-{_minute(t)}-{i}" for i, (t, *_) in enumerate(notes)],
            "ts": pa.array([n[0] for n in notes], type=TS),
            "service": [SERVICE] * len(notes),
            "kind": [n[1] for n in notes],
            "text": [n[2] for n in notes],
            "labels": pa.array([list(n[3].items()) for n in notes], type=ATTRIBUTES),
        }
    ).cast(ANNOTATION)
    return DemoPlan(start, end, tuple(incidents), annotations)


def generate(
    plan: DemoPlan,
    *,
    rate_per_minute: float = 60.0,
    seed: int = 7,
    chunk_minutes: int = 1440,
    workers: int = 2,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield `(requests, scores)` per `chunk_minutes` of the plan, in time order.

    Requests conform to REQUEST_EVENT and are sorted by `ts`; scores conform to
    SCORE_EVENT, in the order of the requests they score, and come with that request's
    chunk. `workers` threads draw hours ahead (numpy and Arrow release the GIL); the
    output does not depend on `workers` or `chunk_minutes`.
    """
    if rate_per_minute <= 0 or chunk_minutes < 1 or seed < 0 or workers < 1:
        raise ValueError("need rate_per_minute > 0, chunk_minutes >= 1, seed >= 0, workers >= 1")
    windows = {i.kind: (_minute(i.start), _minute(i.end)) for i in plan.incidents}
    first, last = _minute(plan.start), _minute(plan.end)
    chunks = [(c0, min(c0 + chunk_minutes, last)) for c0 in range(first, last, chunk_minutes)]
    pool = ThreadPoolExecutor(workers, thread_name_prefix="slokit-demo")
    hours: dict[int, Future[_Hour]] = {}

    def submit(c0: int, c1: int) -> None:
        for h in range(c0 // 60, (c1 - 1) // 60 + 1):
            if h not in hours:
                hours[h] = pool.submit(_hour, h, windows, rate_per_minute, seed)

    try:
        for n, (c0, c1) in enumerate(chunks):
            submit(c0, c1)
            if n + 1 < len(chunks):
                submit(*chunks[n + 1])  # draw ahead while the caller consumes this chunk
            parts = [hours[h].result().slice(c0, c1) for h in range(c0 // 60, (c1 - 1) // 60 + 1)]
            for h in [h for h in hours if h < (c1 - 1) // 60]:
                del hours[h]
            yield (
                pa.concat_tables([r for r, _ in parts]),
                pa.concat_tables([s for _, s in parts]),
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _minute(t: datetime) -> int:
    return int(t.timestamp()) // 60


def load_shape(minutes: np.ndarray) -> np.ndarray:
    """Expected rate / mean rate at each epoch minute (daily x weekly seasonality)."""
    hour_of_day = (minutes % 1440) / 60.0
    daily = 1.0 + 0.7 * np.cos(2 * np.pi * (hour_of_day - 15.0) / 24.0)
    weekday = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return daily * np.where(weekday >= 5, 0.6, 1.0) / _WEEKLY_MEAN


def _hour(hour: int, windows: dict[str, tuple[int, int]], rate: float, seed: int) -> _Hour:
    """Draw every request of one UTC hour (and its scores) from the hour's own generator."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, hour])))
    minutes = hour * 60 + np.arange(60, dtype=np.int64)
    load_min = load_shape(minutes) * math.exp(0.08 * rng.standard_normal())
    counts = rng.poisson(rate * load_min)
    n = int(counts.sum())
    minute = np.repeat(minutes, counts)
    ts = np.sort(minute * _US_PER_MIN + rng.integers(0, _US_PER_MIN, n))
    seq = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    load = np.repeat(load_min, counts)
    u = rng.random((9, n))
    z = rng.standard_normal((5, n))

    def during(kind: str) -> np.ndarray:
        a, b = windows[kind]
        return (minute >= a) & (minute < b)

    outage, lat, qual, cost = (
        during(k) for k in ("outage", "latency_regression", "quality_regression", "cost_spike")
    )
    route = np.searchsorted(_ROUTE_CUM, u[0], side="right")
    tenant = np.searchsorted(_TENANT_CUM, u[1], side="right")
    tier = _TENANT_TIER[tenant]
    gen = route != EMBEDDING
    model = np.where(u[3] < _P_70B[route], 0, 1)
    model[~gen] = 2
    model[cost & (route == COMPLETION)] = 3

    in_tok = np.minimum(np.ceil(np.exp(_IN_MU[route] + _IN_SIG[route] * z[0])), _IN_MAX[route])
    out_tok = np.clip(np.ceil(np.exp(_OUT_MU[route] + _OUT_SIG[route] * z[1])), 1, 2048) * gen
    congestion = 0.08 * load**3
    queue = 3.0 * np.exp(0.5 * z[2]) * load**3
    ttft = (_TTFT_BASE[model] + _PREFILL[model] * in_tok / 1000) * np.exp(0.25 * z[3])
    ttft *= (1 + congestion) * np.where(lat & (route == CHAT), 3.0, 1.0)
    cold = u[4] < 0.001
    ttft += cold * (3000.0 + 5000.0 * u[6])
    tpot = _TPOT[model] * np.exp(0.15 * z[4]) * (1 + 0.5 * congestion)
    itl = tpot * (1.3 - 1.5 * np.log1p(-u[7]))

    p_rl = _RATE_LIMIT[tenant] * load
    p_shed = (tier == 2) * 0.01 * np.clip((load - 1.4) / 0.5, 0.0, 1.0)
    bad = np.flatnonzero(u[5] < 0.0047 + p_rl + p_shed)  # ~1% of rows: classify only those
    m = bad.size
    ps = [np.full(m, 0.003), p_rl[bad], p_shed[bad], np.full(m, 5e-4), np.full(m, 2e-4)]
    codes = np.array([CLIENT_ERROR, RATE_LIMITED, SHED, ERROR, TIMEOUT, CANCELLED], np.int8)
    outcome = np.zeros(n, np.int8)
    outcome[bad] = codes[(u[5][bad] >= np.cumsum(ps, axis=0)).sum(axis=0)]
    outcome[outage] = ERROR
    status = _STATUS[outcome]
    status[outage] = 503

    served = (outcome == OK) | (outcome == CANCELLED)
    rejected = outage | (outcome >= SHED)
    cancelled = outcome == CANCELLED
    out_tok = np.where(cancelled, np.maximum(1.0, np.floor(out_tok * u[6])) * gen, out_tok)
    out_tok = np.where(served, out_tok, 0.0)
    latency = queue + ttft + np.where(gen, tpot * np.maximum(out_tok - 1, 0), 0.0)
    latency = np.where(outcome == ERROR, queue + ttft * u[6], latency)
    latency = np.where(outcome == TIMEOUT, 60_000.0, latency)
    latency = np.where(rejected, 1.0 + 4.0 * u[6], latency)
    cost_usd = np.where(served, in_tok * _PRICE_IN[model] + out_tok * _PRICE_OUT[model], 0.0) / 1e6
    no_ttft = ~served | ~gen
    no_tpot = no_ttft | (out_tok < 2)

    # Scores: disjoint 5% (judge) and 2% (thumbs) slices of ok generation requests.
    ok_gen = (outcome == OK) & gen
    rows = np.flatnonzero(ok_gen & (u[8] < 0.07))
    kind = (u[8][rows] >= 0.05).astype(np.int8)  # 0 judge, 1 thumbs
    s = rng.random((3, rows.size))
    worse = qual[rows] & (route[rows] == RAG)
    p_pass = np.where(kind == 0, np.where(worse, 0.70, 0.95), np.where(worse, 0.75, 0.90))
    p_pass = np.where((kind == 1) & lat[rows] & (route[rows] == CHAT), 0.80, p_pass)
    passed = s[0] < p_pass
    value = np.where(
        kind == 0, np.where(passed, 0.7 + 0.3 * np.sqrt(s[1]), 0.7 * s[1]), passed * 1.0
    )
    delay_s = np.where(kind == 0, 5.0 - 60.0 * np.log1p(-s[2]), 10.0 - 120.0 * np.log1p(-s[2]))
    score_ts = ts[rows] + ((latency[rows] + delay_s * 1000) * 1000).astype(np.int64)

    rag = route == RAG
    event_id = _ids(seed, hour, minute, seq)
    requests = pa.Table.from_arrays(
        [
            event_id,
            pa.array(ts.view("datetime64[us]"), type=TS),
            pa.repeat(SERVICE, n),
            _take(ROUTES, route),
            _take(MODELS, model),
            _take(TIERS, tier),
            _take(TENANTS, tenant),
            _take(REGIONS, u[2] >= 0.65),
            _take(DEPLOYMENTS, lat),
            _take(OUTCOMES, outcome),
            pa.array(status, pa.int32()),
            pa.array(latency),
            pa.array(ttft, mask=no_ttft),
            pa.array(tpot, mask=no_tpot),
            pa.array(itl, mask=no_tpot),
            pa.array(queue, mask=rejected),
            pa.array(in_tok.astype(np.int64), mask=rejected),
            pa.array(out_tok.astype(np.int64), mask=rejected),
            pa.array(cost_usd),
            pa.array(cold & served),
            pa.MapArray.from_arrays(
                pa.array(np.concatenate([[0], np.cumsum(rag)]).astype(np.int32)),
                pa.repeat("prompt", int(rag.sum())),
                _take(PROMPTS, qual[rag]),
                type=ATTRIBUTES,
                mask=pa.array(~rag),
            ),
        ],
        schema=REQUEST_EVENT,
    )
    request_id = event_id.take(pa.array(rows))
    scores = pa.Table.from_arrays(
        [
            pc.binary_join_element_wise(request_id, _take(("j", "t"), kind), "-"),
            pa.array(score_ts.view("datetime64[us]"), type=TS),
            request_id,
            pa.repeat(SERVICE, rows.size),
            _take(SCORE_NAMES, np.where((kind == 0) & (route[rows] != RAG), 2, kind)),
            pa.array(value),
            pa.array(passed),
            _take(SCORE_SOURCES, kind),
            pa.nulls(rows.size, pa.string()),
        ],
        schema=SCORE_EVENT,
    )
    return _Hour(hour, requests, scores, np.concatenate([[0], np.cumsum(counts)]), rows)


@dataclass(frozen=True)
class _Hour:
    """One UTC hour of traffic; `starts[k]` is the first request row of minute k."""

    hour: int
    requests: pa.Table
    scores: pa.Table
    starts: np.ndarray
    score_rows: np.ndarray

    def slice(self, c0: int, c1: int) -> tuple[pa.Table, pa.Table]:
        """The requests in minutes [c0, c1) and the scores of those requests."""
        lo, hi = (int(self.starts[np.clip(c - self.hour * 60, 0, 60)]) for c in (c0, c1))
        s_lo, s_hi = (int(i) for i in np.searchsorted(self.score_rows, [lo, hi]))
        return self.requests.slice(lo, hi - lo), self.scores.slice(s_lo, s_hi - s_lo)


def _take(names: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(names, pa.string()), pa.array(idx.astype(np.int8)))


def _ids(seed: int, hour: int, minute: np.ndarray, seq: np.ndarray) -> pa.Array:
    """`d{seed}-{epoch minute}-{seq}` ids, seq zero-padded to the hour's widest.

    Written straight into one Arrow string buffer: formatting 50M ids through Python
    or Arrow's join kernel took longer than drawing the traffic.
    """
    digits = len(str(hour * 60 + 59))  # pad so every id of the hour has one length
    heads = [f"d{seed}-{m:0{digits}d}-".encode() for m in range(hour * 60, hour * 60 + 60)]
    width = len(str(int(seq.max(initial=0))))
    head = np.frombuffer(b"".join(heads), np.uint8).reshape(60, -1)
    powers = 10 ** np.arange(width - 1, -1, -1)
    tail = (np.arange(int(seq.max(initial=0)) + 1)[:, None] // powers % 10 + 48).astype(np.uint8)
    buf = np.concatenate([head[minute % 60], tail[seq]], axis=1)
    offsets = np.arange(seq.size + 1, dtype=np.int32) * buf.shape[1]
    return pa.Array.from_buffers(
        pa.string(), seq.size, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )
