"""Price books: what a token costs on a provider's API, and what an hour of a
self-hosted GPU instance costs.

The file (YAML or JSON) uses the field names of LiteLLM's model price map
(`input_cost_per_token`, `output_cost_per_token`, `cache_read_input_token_cost`), so an
entry can be copied from it. Load -> validate the file types -> check what spans
entries -> map to the `PriceBook` the cost code reads, each its own step
(STYLE.md 2). Every problem is reported as `FILE:LINE: path.to.field: message`.

    models:
      gpt-4o: {input_cost_per_token: 2.5e-06, output_cost_per_token: 1.0e-05}
    instances:
      p5.48xlarge: {hourly_cost: 98.32, gpus: 8}
    deployments:
      llama-prod: {instance: p5.48xlarge, replicas: 2, models: [llama-3.1-70b]}
    attribution_period: 1h
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from slokit.core.durations import parse_minutes
from slokit.errors import SpecError
from slokit.spec.load import parse_yaml
from slokit.spec.v1 import Strict

Where = tuple[str | int, ...]
Problem = tuple[int | None, str, str]  # (line, field path, message)

# -- the file types -------------------------------------------------------------------


class ModelPriceV1(Strict):
    """One API-priced model, in USD per token (LiteLLM's field names)."""

    input_cost_per_token: float = Field(ge=0)
    output_cost_per_token: float = Field(ge=0)
    # Cached input tokens (attributes.cached_tokens); without it they cost the input price.
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    aliases: list[str] = Field(default_factory=list)  # other names events use for it
    # Informational LiteLLM fields, accepted so an entry can be pasted unchanged.
    litellm_provider: str | None = None
    mode: str | None = None
    max_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None


class InstanceV1(Strict):
    """A GPU machine type and what one of them costs per hour."""

    hourly_cost: float = Field(gt=0)
    gpus: int = Field(ge=1)
    description: str | None = None


class DeploymentV1(Strict):
    """A self-hosted deployment: requests whose `deployment` is this entry's name, or
    whose `model` is listed in `models`, share the GPU time of `replicas` instances."""

    instance: str
    replicas: int = Field(default=1, ge=1)
    models: list[str] = Field(default_factory=list)


class PriceBookV1(Strict):
    models: dict[str, ModelPriceV1] = Field(default_factory=dict)
    instances: dict[str, InstanceV1] = Field(default_factory=dict)
    deployments: dict[str, DeploymentV1] = Field(default_factory=dict)
    attribution_period: str = "1h"


# -- the model the cost code reads ----------------------------------------------------


@dataclass(frozen=True)
class TokenPrice:
    model: str  # the entry's name in the book; aliases resolve to it
    input: float  # USD per input token not read from the cache
    output: float  # USD per output token
    cache_read: float | None  # USD per cached input token; None: the input price

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """The list-price cost of one request (the same formula `fill_costs` and
        `slokit cost` apply column-wise)."""
        cached = min(cached_tokens, input_tokens)
        cache_price = self.input if self.cache_read is None else self.cache_read
        return (
            (input_tokens - cached) * self.input
            + cached * cache_price
            + output_tokens * self.output
        )


@dataclass(frozen=True)
class Pool:
    """One self-hosted deployment: the GPU time its requests share."""

    name: str
    instance: str
    hourly_cost: float  # USD per hour of one instance
    gpus: int  # per instance
    replicas: int
    models: tuple[str, ...] = ()

    @property
    def hourly_usd(self) -> float:
        return self.hourly_cost * self.replicas

    @property
    def gpus_total(self) -> int:
        return self.gpus * self.replicas


@dataclass(frozen=True)
class PriceBook:
    prices: Mapping[str, TokenPrice] = field(default_factory=dict)  # by model name or alias
    pools: tuple[Pool, ...] = ()
    period_minutes: int = 60  # GPU time is attributed per period of this length
    source: str = "<price book>"

    def price(self, model: str | None) -> TokenPrice | None:
        return None if model is None else self.prices.get(model)

    def pool_for(self, deployment: str | None, model: str | None) -> Pool | None:
        """The pool serving a request: by its deployment first, then by its model."""
        for p in self.pools:
            if deployment is not None and p.name == deployment:
                return p
        for p in self.pools:
            if model is not None and model in p.models:
                return p
        return None


# -- loading --------------------------------------------------------------------------

DEFAULT_SOURCE = "slokit/cost/prices.yaml (bundled examples)"


def load_pricebook(path: str | Path) -> PriceBook:
    """Read and validate a price book file (`.json`, else YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the price book: {exc.strerror}") from exc
    return loads_pricebook(text, source=str(p), fmt="json" if p.suffix == ".json" else "yaml")


def default_pricebook() -> PriceBook:
    """The bundled example book: a few public list prices and one self-hosted example."""
    text = resources.files("slokit.cost").joinpath("prices.yaml").read_text(encoding="utf-8")
    return loads_pricebook(text, source=DEFAULT_SOURCE)


def loads_pricebook(text: str, source: str = "<price book>", fmt: str = "yaml") -> PriceBook:
    data, lines = _parse(text, source, fmt)
    raw = validate_v1(data, lines, source)
    problems = list(check_book(raw, lines))
    if problems:
        raise _error(source, problems)
    return to_book(raw, source)


def _parse(text: str, source: str, fmt: str) -> tuple[Any, dict[Where, int]]:
    if fmt == "json":
        try:
            return json.loads(text), {}
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    return parse_yaml(text, source)


def validate_v1(data: Any, lines: dict[Where, int], source: str) -> PriceBookV1:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}:1: a price book is a mapping with `models`, `instances` and `deployments`"
        )
    try:
        return PriceBookV1.model_validate(data)
    except ValidationError as exc:
        raise _error(source, [_word(e, lines) for e in exc.errors()]) from None


def _word(e: Any, lines: dict[Where, int]) -> Problem:
    path: Where = tuple(e["loc"])
    msg = str(e["msg"]).removeprefix("Value error, ")
    ctx = e.get("ctx") or {}
    if e["type"] == "unknown_field":
        path = (*path, ctx["field"])
    elif e["type"] == "missing":
        msg = "required field is missing"
    elif e["type"] == "greater_than_equal":
        msg = f"must be >= {ctx['ge']:g}, got {e['input']!r}"
    elif e["type"] == "greater_than":
        msg = f"must be > {ctx['gt']:g}, got {e['input']!r}"
    return _line_of(path, lines), _dotted(path), msg


def check_book(raw: PriceBookV1, lines: dict[Where, int]) -> Iterable[Problem]:
    """Checks that span entries: instances exist, every model name is priced once, the
    attribution period divides a day."""

    def problem(where: Where, msg: str) -> Problem:
        return _line_of(where, lines), _dotted(where), msg

    owner: dict[str, Where] = {}  # model name -> the entry that prices it
    named: list[tuple[str, Where]] = [(name, ("models", name)) for name in raw.models]
    named += [(a, ("models", n, "aliases")) for n, m in raw.models.items() for a in m.aliases]
    for alias, where in named:  # entry names first: an alias is the one that clashes
        if alias in owner:
            yield problem(where, f"`{alias}` is already priced by {_dotted(owner[alias])}")
        else:
            owner[alias] = where[:2]
    for name, d in raw.deployments.items():
        if d.instance not in raw.instances:
            yield problem(
                ("deployments", name, "instance"),
                _unknown("instance", d.instance, raw.instances),
            )
        for model in d.models:
            if model in owner:
                yield problem(
                    ("deployments", name, "models"),
                    f"`{model}` is already priced by {_dotted(owner[model])}; a model is "
                    "priced one way, by token or by GPU time",
                )
            else:
                owner[model] = ("deployments", name)
    try:
        minutes = parse_minutes(raw.attribution_period)
    except ValueError as exc:
        yield problem(("attribution_period",), str(exc))
    else:
        if 1440 % minutes:
            yield problem(
                ("attribution_period",),
                f"must divide a day evenly (15m, 30m, 1h, 2h, 1d, ...), "
                f"got {raw.attribution_period!r}",
            )


def to_book(raw: PriceBookV1, source: str) -> PriceBook:
    prices: dict[str, TokenPrice] = {}
    for name, m in raw.models.items():
        price = TokenPrice(
            model=name,
            input=m.input_cost_per_token,
            output=m.output_cost_per_token,
            cache_read=m.cache_read_input_token_cost,
        )
        for n in (name, *m.aliases):
            prices[n] = price
    pools = tuple(
        Pool(
            name=name,
            instance=d.instance,
            hourly_cost=raw.instances[d.instance].hourly_cost,
            gpus=raw.instances[d.instance].gpus,
            replicas=d.replicas,
            models=tuple(d.models),
        )
        for name, d in raw.deployments.items()
    )
    return PriceBook(
        prices=prices,
        pools=pools,
        period_minutes=parse_minutes(raw.attribution_period),
        source=source,
    )


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" — did you mean `{close[0]}`?" if close else ""
    return f"unknown {kind} `{name}`{hint} (defined: {', '.join(names) or 'none'})"


def _line_of(path: Where, lines: dict[Where, int]) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _dotted(path: Where) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "(top)"


def _error(source: str, problems: list[Problem]) -> SpecError:
    worded = [
        f"{source}:{line}: {path}: {msg}" if line else f"{source}: {path}: {msg}"
        for line, path, msg in sorted(problems, key=lambda p: (p[0] or 0, p[1]))
    ]
    head = f"{source}: {len(worded)} problem{'s' if len(worded) != 1 else ''} in price book"
    return SpecError(head + "\n  " + "\n  ".join(worded), worded)
