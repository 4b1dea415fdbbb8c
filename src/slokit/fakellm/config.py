"""The fake LLM's configuration file (`kind: fake-llm`, docs/fake-llm.md).

Load -> validate the file types -> map to the plain `FakeLLMConfig` the server reads
(STYLE.md 2). Every problem is reported as `FILE:LINE: path.to.field: message`; command
line options go through the same types (`with_overrides`), so their errors name the
option's field too.

    kind: fake-llm
    port: 8001
    ttft_ms: lognormal:150:600
    itl_ms: {kind: lognormal, median: 20, p99: 50}
    output_tokens: 64
    capacity: 64
    faults:
      rates: {"503": 0.01, timeout: 0.001}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from slokit.errors import SpecError
from slokit.fakellm.distributions import Distribution
from slokit.spec import v1
from slokit.spec.load import parse_yaml, read_source, validate_as

KIND = "fake-llm"
NAMED_FAULTS = ("timeout", "reset", "disconnect", "slow_first_byte")
FAULT_HELP = "a status code 400-599, or timeout, reset, disconnect, slow_first_byte"
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
DEFAULT_TTFT = Distribution.lognormal(150, p99=600)
DEFAULT_ITL = Distribution.lognormal(20, p99=50)
DEFAULT_OUTPUT = Distribution.constant(64)


def fault_kind(text: str) -> str:
    """The canonical name of a fault (`"503"`, `"timeout"`); ValueError if unknown."""
    kind = text.strip().lower()
    if kind in NAMED_FAULTS:
        return kind
    if kind.isdigit() and 400 <= int(kind) <= 599:
        return str(int(kind))
    raise ValueError(f"unknown fault {text!r}: use {FAULT_HELP}")


# -- the model the server reads -------------------------------------------------------


@dataclass(frozen=True)
class FaultConfig:
    rates: Mapping[str, float] = field(default_factory=dict)  # fault kind -> probability
    retry_after_s: float = 1.0  # the Retry-After of a 429
    slow_first_byte_ms: float = 5000.0  # how long `slow_first_byte` holds the headers
    disconnect_after: int = 3  # content chunks streamed before `disconnect` drops


@dataclass(frozen=True)
class FakeLLMConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    seed: int = 0
    models: tuple[str, ...] = DEFAULT_MODELS
    reject_unknown_models: bool = False
    ttft_ms: Distribution = DEFAULT_TTFT
    itl_ms: Distribution = DEFAULT_ITL
    output_tokens: Distribution = DEFAULT_OUTPUT
    chars_per_token: float = 4.0
    content: Literal["lorem", "numbered"] = "lorem"
    capacity: int = 64
    max_concurrency: int | None = None
    overload: Literal["reject", "queue"] = "reject"
    embedding_dimensions: int = 256
    history: int = 100
    faults: FaultConfig = field(default_factory=FaultConfig)
    source: str = "<defaults>"


# -- the file types -------------------------------------------------------------------


class DistributionV1(v1.Strict):
    kind: Literal["constant", "lognormal", "uniform"]
    value: float | None = Field(default=None, ge=0)  # constant
    median: float | None = Field(default=None, gt=0)  # lognormal
    p99: float | None = Field(default=None, gt=0)
    sigma: float | None = Field(default=None, ge=0)
    low: float | None = Field(default=None, ge=0)  # uniform
    high: float | None = Field(default=None, ge=0)
    min: float = Field(default=0.0, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> DistributionV1:
        to_model(self)  # raises ValueError naming what is missing or inconsistent
        return self


def to_model(d: DistributionV1) -> Distribution:
    if d.kind == "constant":
        if d.value is None:
            raise ValueError("a constant needs `value`")
        return Distribution.constant(d.value)
    if d.kind == "lognormal":
        if d.median is None:
            raise ValueError("a lognormal needs `median` and one of `p99` or `sigma`")
        return Distribution.lognormal(d.median, d.p99, d.sigma, d.min, d.max)
    if d.low is None or d.high is None:
        raise ValueError("a uniform needs `low` and `high`")
    return Distribution.uniform(d.low, d.high, d.min, d.max)


def _shorthand(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a distribution is a number, a shorthand string or a mapping")
    if isinstance(value, int | float):
        return {"kind": "constant", "value": value}
    if isinstance(value, str):
        d = Distribution.parse(value)
        if d.kind == "constant":
            return {"kind": "constant", "value": d.a}
        if d.kind == "uniform":
            return {"kind": "uniform", "low": d.a, "high": d.b}
        return {"kind": "lognormal", "median": d.a, "sigma": d.b}
    return value


DistField = Annotated[DistributionV1, BeforeValidator(_shorthand)]


class FaultsV1(v1.Strict):
    rates: dict[str, float] = Field(default_factory=dict)
    retry_after_s: float = Field(default=1.0, ge=0)
    slow_first_byte_ms: float = Field(default=5000.0, ge=0)
    disconnect_after: int = Field(default=3, ge=0)

    @field_validator("rates", mode="before")
    @classmethod
    def _rates(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, rate in value.items():
            out[fault_kind(str(key))] = rate
        return out

    @field_validator("rates")
    @classmethod
    def _probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, rate in value.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"the rate of {kind!r} is a probability in [0, 1], got {rate:g}")
        if sum(value.values()) > 1:
            raise ValueError(f"the rates add up to {sum(value.values()):g}, more than 1")
        return value


class FakeLLMV1(v1.Strict):
    api_version: str = Field(default=v1.API_VERSION, alias="apiVersion")
    kind: Literal["fake-llm"] = "fake-llm"
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    seed: int = 0
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)
    reject_unknown_models: bool = False
    ttft_ms: DistField = Field(
        default_factory=lambda: DistributionV1(kind="lognormal", median=150, p99=600)
    )
    itl_ms: DistField = Field(
        default_factory=lambda: DistributionV1(kind="lognormal", median=20, p99=50)
    )
    output_tokens: DistField = Field(
        default_factory=lambda: DistributionV1(kind="constant", value=64)
    )
    chars_per_token: float = Field(default=4.0, gt=0)
    content: Literal["lorem", "numbered"] = "lorem"
    capacity: int = Field(default=64, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    overload: Literal["reject", "queue"] = "reject"
    embedding_dimensions: int = Field(default=256, ge=1, le=8192)
    history: int = Field(default=100, ge=0)
    faults: FaultsV1 = Field(default_factory=FaultsV1)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != v1.API_VERSION:
            raise ValueError(f"use `apiVersion: {v1.API_VERSION}` (or leave it out)")
        return value


# -- loading --------------------------------------------------------------------------


def load_config(path: str | Path) -> FakeLLMConfig:
    return loads_config(*read_source(path, "the fake-llm config"))


def loads_config(text: str, source: str = "<fake-llm>") -> FakeLLMConfig:
    data, lines = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}:1: a fake-llm config is a mapping (`kind: {KIND}`)")
    return to_config(validate_as(FakeLLMV1, data, lines, source, what="fake-llm config"), source)


def config_from_dict(data: Mapping[str, Any], source: str = "<fake-llm>") -> FakeLLMConfig:
    """A config from a mapping shaped like the file (`{"ttft_ms": 0, "capacity": 2}`)."""
    return to_config(validate_as(FakeLLMV1, dict(data), {}, source, what="fake-llm config"), source)


def with_overrides(
    config: FakeLLMConfig, overrides: Mapping[str, Any], source: str = "command line"
) -> FakeLLMConfig:
    """`config` with the given file fields replaced, each checked like in a file."""
    if not overrides:
        return config
    data = dict(overrides)
    if isinstance(data.get("faults"), Mapping):  # merge with the config's fault settings
        f = config.faults
        extra = dict(data["faults"])
        rates = {**f.rates, **{str(k): v for k, v in extra.pop("rates", {}).items()}}
        data["faults"] = {
            "rates": rates,
            "retry_after_s": f.retry_after_s,
            "slow_first_byte_ms": f.slow_first_byte_ms,
            "disconnect_after": f.disconnect_after,
            **extra,
        }
    raw = validate_as(FakeLLMV1, data, {}, source, what="fake-llm options")
    full = to_config(raw, config.source)
    return replace(config, **{name: getattr(full, name) for name in data})


def to_config(raw: FakeLLMV1, source: str) -> FakeLLMConfig:
    f = raw.faults
    return FakeLLMConfig(
        host=raw.host,
        port=raw.port,
        seed=raw.seed,
        models=tuple(raw.models),
        reject_unknown_models=raw.reject_unknown_models,
        ttft_ms=to_model(raw.ttft_ms),
        itl_ms=to_model(raw.itl_ms),
        output_tokens=to_model(raw.output_tokens),
        chars_per_token=raw.chars_per_token,
        content=raw.content,
        capacity=raw.capacity,
        max_concurrency=raw.max_concurrency,
        overload=raw.overload,
        embedding_dimensions=raw.embedding_dimensions,
        history=raw.history,
        faults=FaultConfig(
            dict(f.rates), f.retry_after_s, f.slow_first_byte_ms, f.disconnect_after
        ),
        source=source,
    )
