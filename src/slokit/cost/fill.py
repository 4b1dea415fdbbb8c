"""Fill missing `cost_usd` of request events from a price book, column-wise.

Only API-priced models are filled here: the cost of a self-hosted request depends on
every request its deployment served in the same period, which one batch does not
hold (see `attribute_self_hosted`). A recorded cost is never replaced, and a model
the book does not price is reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from slokit.cost.costed import CACHED_TOKENS_KEY
from slokit.cost.pricebook import PriceBook

F64 = pa.float64()


@dataclass(frozen=True)
class Unpriced:
    """Requests of one model whose cost is unknown, and why: `no_price` (the book has
    no entry for the model) or `no_tokens` (a token count the price needs is null)."""

    model: str | None
    reason: str
    requests: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "reason": self.reason, "requests": self.requests}


@dataclass(frozen=True)
class FillReport:
    rows: int
    recorded: int  # already had a cost_usd; kept
    filled: int  # priced from the book now
    self_hosted: int  # left null: served by a self-hosted pool (attributed over a period)
    unpriced: list[Unpriced] = field(default_factory=list)

    @property
    def unpriced_requests(self) -> int:
        return sum(u.requests for u in self.unpriced)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "recorded": self.recorded,
            "filled": self.filled,
            "self_hosted": self.self_hosted,
            "unpriced_requests": self.unpriced_requests,
            "unpriced": [u.to_dict() for u in self.unpriced],
        }


def _cached_tokens(attributes: Any) -> Any:
    """attributes['cached_tokens'] as int64 when it is a whole number, else null."""
    text = pc.utf8_trim_whitespace(pc.map_lookup(attributes, pa.scalar(CACHED_TOKENS_KEY), "first"))
    ok = pc.match_substring_regex(text, r"^[0-9]{1,18}$")
    return pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.int64())


def list_costs(table: pa.Table, book: PriceBook) -> tuple[Any, Any]:
    """(cost at list price or null, whether the model has a price) for every row: the
    same formula as `slokit cost` (docs/cost.md):
    (input - cached) x input price + cached x cache price + output x output price."""
    names = sorted(book.prices)
    idx = pc.index_in(table.column("model"), value_set=pa.array(names, pa.string()))
    ps = [book.prices[n] for n in names]

    def price(values: list[float]) -> Any:
        return pc.take(pa.array(values, F64), idx)

    in_price = price([p.input for p in ps])
    out_price = price([p.output for p in ps])
    cache_price = price([p.input if p.cache_read is None else p.cache_read for p in ps])
    inp = table.column("input_tokens")
    out = table.column("output_tokens")
    cached_attr = pc.coalesce(_cached_tokens(table.column("attributes")), 0)
    cached = pc.min_element_wise(cached_attr, inp, skip_nulls=False)
    zero = pa.scalar(0.0, F64)
    null = pa.scalar(None, F64)
    free_in = pc.and_(pc.equal(in_price, 0.0), pc.equal(cache_price, 0.0))
    in_part = pc.coalesce(
        pc.add(pc.multiply(pc.subtract(inp, cached), in_price), pc.multiply(cached, cache_price)),
        pc.if_else(free_in, zero, null),
    )
    out_part = pc.coalesce(
        pc.multiply(out, out_price), pc.if_else(pc.equal(out_price, 0.0), zero, null)
    )
    return pc.add(in_part, out_part), pc.is_valid(idx)


def self_hosted_mask(table: pa.Table, book: PriceBook) -> Any:
    """True for rows a self-hosted pool serves (by deployment, or by model)."""
    deployments = pa.array([p.name for p in book.pools], pa.string())
    models = pa.array([m for p in book.pools for m in p.models], pa.string())
    by_dep = pc.is_in(table.column("deployment"), value_set=deployments, skip_nulls=True)
    by_model = pc.is_in(table.column("model"), value_set=models, skip_nulls=True)
    return pc.or_(by_dep, by_model)


def fill_costs(table: pa.Table, book: PriceBook) -> tuple[pa.Table, FillReport]:
    """`table` (request events) with `cost_usd` filled where it is null and the model
    has a list price in `book`, and a report of what was filled and what was not."""
    cost = table.column("cost_usd")
    missing = pc.is_null(cost)
    pooled = pc.fill_null(self_hosted_mask(table, book), False)
    listed, has_price = list_costs(table, book)
    fill = pc.and_(pc.and_(missing, pc.invert(pooled)), pc.is_valid(listed))
    filled = pc.if_else(fill, listed, cost)
    i = table.schema.get_field_index("cost_usd")
    out = table.set_column(i, table.schema.field(i), filled)

    unpriced_mask = pc.and_(pc.and_(missing, pc.invert(pooled)), pc.is_null(listed))
    no_price = pc.filter(table.column("model"), pc.and_(unpriced_mask, pc.invert(has_price)))
    no_tokens = pc.filter(table.column("model"), pc.and_(unpriced_mask, has_price))
    unpriced = [
        Unpriced(model, reason, n)
        for reason, models in (("no_price", no_price), ("no_tokens", no_tokens))
        for model, n in _counts(models)
    ]
    report = FillReport(
        rows=table.num_rows,
        recorded=table.num_rows - _count(missing),
        filled=_count(fill),
        self_hosted=_count(pc.and_(missing, pooled)),
        unpriced=unpriced,
    )
    return out, report


def _counts(values: Any) -> list[tuple[str | None, int]]:
    """(value, count) pairs, most frequent first, then by value."""
    pairs = pc.value_counts(values).to_pylist()
    return sorted(((p["values"], p["counts"]) for p in pairs), key=lambda p: (-p[1], p[0] or ""))


def _count(mask: Any) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
