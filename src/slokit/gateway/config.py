"""The gateway's configuration file (`kind: gateway`): upstreams, API keys, tiers, rate
limits, admission, prices, quality checks, event delivery and budget protection.

Load -> validate the file types -> check what spans entries -> map to the plain
`GatewayConfig` the hot path reads (STYLE.md 2). Every problem is reported as
`FILE:LINE: path.to.field: message`. API keys are stored as SHA-256 hashes
(`slokit gateway hash-key KEY` prints one), never in clear.

    apiVersion: slokit/v1
    kind: gateway
    service: llm-api
    upstreams:
      - {name: vllm-a, url: http://127.0.0.1:8001, models: ["*"]}
    keys:
      - {sha256: 3f7c..., tenant: acme, tier: gold}
    rate_limits:
      default: {requests_per_min: 600, tokens_per_min: 200000}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from slokit.core.admission import DEFAULT_TIERS
from slokit.core.admission import TierPolicy as Tier
from slokit.errors import SpecError
from slokit.spec import v1
from slokit.spec.load import Path_, _dotted, _error, _line_of, parse_yaml, read_source, validate_as

KIND = "gateway"
DEFAULT_REFUSALS = (
    "i'm sorry, but i can't",
    "i am sorry, but i cannot",
    "i can't help with that",
    "i cannot help with that",
    "i'm unable to help",
    "as an ai language model",
)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a config stores for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


# -- the file types -------------------------------------------------------------------


class UpstreamV1(v1.Strict):
    name: str
    url: str
    models: list[str] = Field(default_factory=lambda: ["*"])  # "*" serves any model
    api_key: str | None = None  # sent upstream as a bearer token instead of the client's

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an upstream url starts with http:// or https://")
        return value.rstrip("/")


class HealthCheckV1(v1.Strict):
    path: str = "/v1/models"
    interval_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)
    unhealthy_after: int = Field(default=2, ge=1)  # consecutive failures


class TimeoutsV1(v1.Strict):
    connect_s: float = Field(default=5.0, gt=0)
    first_byte_s: float = Field(default=120.0, gt=0)  # request sent -> response headers
    total_s: float = Field(default=600.0, gt=0)
    # a pooled upstream connection idle this long is closed, not reused (below the
    # upstream's own keep-alive timeout: 5 s for uvicorn-served engines such as vLLM)
    idle_s: float = Field(default=4.0, gt=0)


class KeyV1(v1.Strict):
    sha256: str
    tenant: str
    tier: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        v = value.lower()
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError(
                "not a SHA-256 hex digest (64 hex digits); `slokit gateway hash-key KEY` prints one"
            )
        return v


class AnonymousV1(v1.Strict):
    tenant: str = "anonymous"
    tier: str = "silver"


class TierV1(v1.Strict):
    name: str
    priority: int
    reserved_share: float = Field(default=0.0, ge=0, lt=1)
    max_queue_wait_ms: float = Field(default=1000.0, gt=0)  # predicted wait above: shed
    deadline_ms: float = Field(default=2000.0, gt=0)  # waited longer than this: shed


class LimitV1(v1.Strict):
    requests_per_min: int | None = Field(default=None, gt=0)
    tokens_per_min: int | None = Field(default=None, gt=0)


class RateLimitsV1(v1.Strict):
    default: LimitV1 | None = None
    tenants: dict[str, LimitV1] = Field(default_factory=dict)


class AdmissionV1(v1.Strict):
    enabled: bool = True
    max_queue: int = Field(default=1024, ge=0)
    # the limit starts low and doubles each round trip until queueing first shows (slow
    # start), then follows the gradient: TTFT within `tolerance` of its baseline grows
    # the limit by `smoothing * queue_size` a round trip, beyond it shrinks it
    initial_limit: int = Field(default=8, ge=1)
    min_limit: int = Field(default=4, ge=1)
    max_limit: int = Field(default=1024, ge=1)
    tolerance: float = Field(default=1.2, ge=1)
    queue_size: float | None = Field(default=2.0, ge=0)  # null: sqrt(limit), as Gradient2
    slack_ms: float = Field(default=5.0, ge=0)  # RTT change this small is jitter, not queueing
    # knee memory: when queueing shows, the limit heads for the upstream's capacity as
    # Little's law estimates it and, for `knee_rounds` round trips, grows past it by only
    # `knee_growth` of the usual step (0 rounds: off, Gradient2's rule)
    knee_rounds: int = Field(default=60, ge=0)
    knee_growth: float = Field(default=0.1, gt=0, le=1)
    # a tier's `reserved_share` is a ceiling: it keeps what it needed (in flight plus
    # waiting) at its peak over about this many seconds, plus a margin of the square
    # root of that, at least one slot (0: always the whole share)
    reserve_window_s: float = Field(default=30.0, ge=0)


class QualityV1(v1.Strict):
    enabled: bool = True
    refusal_phrases: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSALS))


class EventsV1(v1.Strict):
    enabled: bool = True  # false: record nothing (metrics and admission still work)
    url: str | None = None  # a remote `slokit serve`; default: the local store
    token: str | None = None
    batch: int = Field(default=20_000, ge=1)  # most events of one kind in one delivery
    # short conversion rounds keep each batch conversion short (p99 added latency 6.5 ->
    # 3.2 ms at 1,000 requests/s); deliveries gather them into batches the store appends
    # cheaply: every 5 s rather than 1 s took the store from 0.23 to 0.13 cores at about
    # 5,300 requests/s (gateway/sink.py, docs/gateway.md)
    flush_interval_s: float = Field(default=0.1, gt=0)
    deliver_interval_s: float = Field(default=5.0, gt=0)
    buffer: int = Field(default=500_000, ge=1)  # events held while delivery is slow


class ProtectionV1(v1.Strict):
    tier: str
    slo: str  # an SLO of the spec whose burn rate decides
    burn_rate_above: float = Field(default=6.0, gt=0)
    window: str = "1h"  # one of the status burn-rate windows
    yield_share: float = Field(default=0.5, gt=0, le=1)  # lower tiers' cap while protected
    interval_s: float = Field(default=30.0, gt=0)


class GatewayV1(v1.Strict):
    apiVersion: str = v1.API_VERSION
    kind: str = KIND
    service: str = "llm-api"
    region: str | None = None
    deployment: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    upstreams: list[UpstreamV1] = Field(default_factory=list)
    health_check: HealthCheckV1 = Field(default_factory=HealthCheckV1)
    retries: int = Field(default=1, ge=0, le=3)  # other upstreams tried before the first byte
    timeouts: TimeoutsV1 = Field(default_factory=TimeoutsV1)
    max_body: int = Field(default=16 << 20, gt=0)
    keys: list[KeyV1] = Field(default_factory=list)
    anonymous: AnonymousV1 | None = None  # who a request without a known key is
    tiers: list[TierV1] | None = None
    rate_limits: RateLimitsV1 = Field(default_factory=RateLimitsV1)
    admission: AdmissionV1 = Field(default_factory=AdmissionV1)
    prices: str | None = None  # a price book file; default: the bundled list prices
    quality: QualityV1 = Field(default_factory=QualityV1)
    events: EventsV1 = Field(default_factory=EventsV1)
    protection: list[ProtectionV1] = Field(default_factory=list)


# -- what the gateway reads -----------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str
    models: tuple[str, ...]
    api_key: str | None = None

    def serves(self, model: str | None) -> bool:
        return "*" in self.models or (model is not None and model in self.models)


@dataclass(frozen=True)
class Identity:
    tenant: str
    tier: str


@dataclass(frozen=True)
class GatewayConfig:
    service: str = "llm-api"
    host: str = "127.0.0.1"
    port: int = 8000
    upstreams: tuple[Upstream, ...] = ()
    health_check: HealthCheckV1 = field(default_factory=HealthCheckV1)
    retries: int = 1
    timeouts: TimeoutsV1 = field(default_factory=TimeoutsV1)
    max_body: int = 16 << 20
    keys: dict[str, Identity] = field(default_factory=dict)  # sha256 -> who
    anonymous: Identity | None = Identity("anonymous", "silver")
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    rate_limits: RateLimitsV1 = field(default_factory=RateLimitsV1)
    admission: AdmissionV1 = field(default_factory=AdmissionV1)
    prices: str | None = None
    quality: QualityV1 = field(default_factory=QualityV1)
    events: EventsV1 = field(default_factory=EventsV1)
    protection: tuple[ProtectionV1, ...] = ()
    region: str | None = None
    deployment: str | None = None
    source: str = "<defaults>"

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)


def load_gateway(path: str | Path) -> GatewayConfig:
    return loads_gateway(*read_source(path, "the gateway config"))


def loads_gateway(text: str, source: str = "<gateway>") -> GatewayConfig:
    data, lines = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}:1: a gateway config is a mapping (`kind: {KIND}`)")
    if data.setdefault("kind", KIND) != KIND:
        raise SpecError(f"{source}:1: kind: use `kind: {KIND}` for a gateway config")
    if data.setdefault("apiVersion", v1.API_VERSION) != v1.API_VERSION:
        raise SpecError(f"{source}:1: apiVersion: use `apiVersion: {v1.API_VERSION}`")
    raw = validate_as(GatewayV1, data, lines, source, what="gateway config")
    problems = _check(raw, lines)
    if problems:
        raise _error(source, problems, "gateway config")
    return to_config(raw, source)


def _check(raw: GatewayV1, lines: dict[Path_, int]) -> list[tuple[int | None, str, str]]:
    out: list[tuple[int | None, str, str]] = []

    def problem(where: Path_, message: str) -> None:
        out.append((_line_of(where, lines), _dotted(where), message))

    tiers = raw.tiers or [
        TierV1(
            name=t.name,
            priority=t.priority,
            reserved_share=t.reserved_share,
            max_queue_wait_ms=t.max_queue_wait_ms,
            deadline_ms=t.deadline_ms,
        )
        for t in DEFAULT_TIERS
    ]
    names = [t.name for t in tiers]
    for i, t in enumerate(tiers):
        if names.count(t.name) > 1:
            problem(("tiers", i, "name"), f"duplicate tier {t.name!r}")
    if sum(t.reserved_share for t in tiers) >= 1:
        problem(("tiers",), "reserved shares add up to 100% or more; leave room for the rest")
    known = f"known tiers: {', '.join(names)}"
    for i, k in enumerate(raw.keys):
        if k.tier not in names:
            problem(("keys", i, "tier"), f"unknown tier {k.tier!r} ({known})")
    hashes = [k.sha256 for k in raw.keys]
    for i, h in enumerate(hashes):
        if hashes.count(h) > 1:
            problem(("keys", i, "sha256"), "the same key is listed twice")
    if raw.anonymous is not None and raw.anonymous.tier not in names:
        problem(("anonymous", "tier"), f"unknown tier {raw.anonymous.tier!r} ({known})")
    ups = [u.name for u in raw.upstreams]
    for i, u in enumerate(raw.upstreams):
        if ups.count(u.name) > 1:
            problem(("upstreams", i, "name"), f"duplicate upstream {u.name!r}")
    for i, p in enumerate(raw.protection):
        if p.tier not in names:
            problem(("protection", i, "tier"), f"unknown tier {p.tier!r} ({known})")
    a = raw.admission
    if not a.min_limit <= a.initial_limit <= a.max_limit:
        problem(("admission",), "need min_limit <= initial_limit <= max_limit")
    return out


def to_config(raw: GatewayV1, source: str = "<gateway>") -> GatewayConfig:
    tiers = (
        tuple(
            Tier(t.name, t.priority, t.reserved_share, t.max_queue_wait_ms, t.deadline_ms)
            for t in raw.tiers
        )
        if raw.tiers
        else DEFAULT_TIERS
    )
    anonymous: Identity | None
    if raw.anonymous is not None:
        anonymous = Identity(raw.anonymous.tenant, raw.anonymous.tier)
    elif raw.keys:
        anonymous = None  # keys configured: an unknown key is refused (401)
    else:
        anonymous = Identity("anonymous", "silver")
    return GatewayConfig(
        service=raw.service,
        host=raw.host,
        port=raw.port,
        upstreams=tuple(Upstream(u.name, u.url, tuple(u.models), u.api_key) for u in raw.upstreams),
        health_check=raw.health_check,
        retries=raw.retries,
        timeouts=raw.timeouts,
        max_body=raw.max_body,
        keys={k.sha256: Identity(k.tenant, k.tier) for k in raw.keys},
        anonymous=anonymous,
        tiers=tiers,
        rate_limits=raw.rate_limits,
        admission=raw.admission,
        prices=raw.prices,
        quality=raw.quality,
        events=raw.events,
        protection=tuple(raw.protection),
        region=raw.region,
        deployment=raw.deployment,
        source=source,
    )


def with_upstreams(config: GatewayConfig, urls: list[str]) -> GatewayConfig:
    """`--upstream URL` on the command line: these upstreams replace the file's."""
    from dataclasses import replace

    ups = tuple(Upstream(f"upstream-{i + 1}", u.rstrip("/"), ("*",)) for i, u in enumerate(urls))
    return replace(config, upstreams=ups)


def summary(config: GatewayConfig) -> dict[str, Any]:
    return {
        "service": config.service,
        "upstreams": [u.url for u in config.upstreams],
        "keys": len(config.keys),
        "anonymous": None if config.anonymous is None else config.anonymous.__dict__,
        "tiers": [t.name for t in config.tiers],
    }
