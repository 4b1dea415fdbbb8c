"""`slokit cost`: spend per route, model, tier, tenant or deployment, from one
DuckDB query over the stored request events (formulas: docs/cost.md)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slokit.cost.costed import WASTED_OUTCOMES, costed_sql
from slokit.cost.fill import Unpriced
from slokit.cost.pricebook import PriceBook
from slokit.errors import SlokitError
from slokit.events.schema import LABELS
from slokit.store.duckdb_store import DuckDBStore

DIMENSIONS: tuple[str, ...] = LABELS  # service, route, model, tier, tenant, region, deployment


def parse_dimensions(values: Iterable[str]) -> tuple[str, ...]:
    """`--by` values, repeated or comma-separated, in order, without repeats."""
    out: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part not in DIMENSIONS:
                close = difflib.get_close_matches(part, DIMENSIONS, n=1)
                hint = f" — did you mean `{close[0]}`?" if close else ""
                raise SlokitError(
                    f"--by: unknown dimension `{part}`{hint} (one of {', '.join(DIMENSIONS)})"
                )
            if part not in out:
                out.append(part)
    return tuple(out)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class CostRow:
    """Spend of one group (or of everything, with an empty `group`)."""

    group: dict[str, str | None]
    requests: int
    priced_requests: int  # requests with a known cost (recorded, self-hosted or list price)
    recorded: int  # cost_usd recorded on the event
    from_book: int  # cost from the price book's list price
    self_hosted: int  # cost from the GPU time of a self-hosted pool
    spend_usd: float  # sum of the known costs
    output_tokens: int  # of priced requests
    tokens: int  # input + output, of priced requests
    wasted_usd: float  # spend on requests that ended error, cancelled, timeout or shed

    @property
    def unpriced(self) -> int:
        return self.requests - self.priced_requests

    @property
    def cost_per_request(self) -> float | None:
        return _ratio(self.spend_usd, self.priced_requests)

    @property
    def cost_per_1k_output_tokens(self) -> float | None:
        return _ratio(self.spend_usd * 1000, self.output_tokens)

    @property
    def tokens_per_usd(self) -> float | None:
        return _ratio(self.tokens, self.spend_usd)

    @property
    def wasted_share(self) -> float | None:
        return _ratio(self.wasted_usd, self.spend_usd)

    def to_dict(self) -> dict[str, Any]:
        known = self.priced_requests > 0  # no known cost: the spend is unknown, not 0
        return {
            "group": self.group,
            "requests": self.requests,
            "priced_requests": self.priced_requests,
            "recorded": self.recorded,
            "priced_from_book": self.from_book,
            "self_hosted": self.self_hosted,
            "unpriced": self.unpriced,
            "spend_usd": self.spend_usd if known else None,
            "cost_per_request_usd": self.cost_per_request,
            "output_tokens": self.output_tokens,
            "cost_per_1k_output_tokens_usd": self.cost_per_1k_output_tokens,
            "tokens": self.tokens,
            "tokens_per_usd": self.tokens_per_usd,
            "wasted_usd": self.wasted_usd if known else None,
            "wasted_share": self.wasted_share,
        }


@dataclass(frozen=True)
class CostReport:
    start: datetime
    end: datetime
    by: tuple[str, ...]
    service: str | None
    prices: str  # where the price book came from
    total: CostRow
    rows: list[CostRow] = field(default_factory=list)  # one per group, by spend
    unpriced: list[Unpriced] = field(default_factory=list)  # by model and reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "service": self.service,
            "by": list(self.by),
            "prices": self.prices,
            "wasted_outcomes": list(WASTED_OUTCOMES),
            "groups": [r.to_dict() for r in self.rows],
            "total": self.total.to_dict(),
            "unpriced": [u.to_dict() for u in self.unpriced],
        }


_MEASURES = """
  count(*) AS requests,
  count(cost) AS priced_requests,
  count(*) FILTER (WHERE cost_source = 'recorded') AS recorded,
  count(*) FILTER (WHERE cost_source = 'list_price') AS from_book,
  count(*) FILTER (WHERE cost_source = 'self_hosted') AS self_hosted,
  coalesce(sum(cost), 0.0) AS spend_usd,
  coalesce(sum(output_tokens) FILTER (WHERE cost IS NOT NULL), 0)::BIGINT AS output_tokens,
  coalesce(sum(tokens) FILTER (WHERE cost IS NOT NULL), 0)::BIGINT AS tokens,
  coalesce(sum(cost) FILTER (WHERE wasted), 0.0) AS wasted_usd"""


def cost_report(
    store: DuckDBStore,
    book: PriceBook,
    start: datetime,
    end: datetime,
    *,
    by: Iterable[str] = (),
    service: str | None = None,
) -> CostReport:
    """Spend over [start, end), per group of the `by` labels, with a total row and the
    requests whose cost is unknown, per model and reason."""
    dims = parse_dimensions(by)
    costed, params = costed_sql(book, start, end, service=service)
    keys = ", ".join(dims)
    sets = ", ".join(s for s in (f"({keys})" if dims else "", "()", "(u_model, u_reason)") if s)
    marker = f", GROUPING({dims[0]}) AS g_dims" if dims else ""
    sql = (
        f"SELECT {keys + ', ' if dims else ''}u_model, u_reason, GROUPING(u_reason) AS g_u"
        f"{marker}, {_MEASURES} "
        "FROM (SELECT *, CASE WHEN cost IS NULL THEN model END AS u_model, "
        f"CASE WHEN cost IS NULL THEN cost_source END AS u_reason FROM ({costed})) "
        f"GROUP BY GROUPING SETS ({sets})"
    )
    rows: list[CostRow] = []
    unpriced: list[Unpriced] = []
    total: CostRow | None = None
    for r in store.query(sql, params).to_pylist():
        measures = {k: r[k] for k in CostRow.__dataclass_fields__ if k in r}
        if r["g_u"] == 0:
            if r["u_reason"] is not None:
                unpriced.append(Unpriced(r["u_model"], r["u_reason"], r["requests"]))
        elif dims and r["g_dims"] == 0:
            rows.append(CostRow(group={d: r[d] for d in dims}, **measures))
        else:
            total = CostRow(group={}, **measures)
    assert total is not None  # the () grouping set always yields one row
    rows.sort(key=lambda row: (-row.spend_usd, [str(v) for v in row.group.values()]))
    unpriced.sort(key=lambda u: (-u.requests, u.reason, u.model or ""))
    return CostReport(
        start=start,
        end=end,
        by=dims,
        service=service,
        prices=book.source,
        total=total,
        rows=rows,
        unpriced=unpriced,
    )
