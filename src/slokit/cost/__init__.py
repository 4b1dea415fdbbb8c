"""Cost of inference: price books, filling missing request costs from list prices,
attributing self-hosted GPU time by token share, and spend reports (docs/cost.md).

    book = load_pricebook("prices.yaml")
    table, report = fill_costs(table, book)
    with DuckDBStore("slokit.duckdb") as store:
        spend = cost_report(store, book, start, end, by=["model"])
"""

from slokit.cost.attribution import PoolPeriod, SelfHostedReport, attribute_self_hosted
from slokit.cost.costed import WASTED_OUTCOMES
from slokit.cost.fill import FillReport, Unpriced, fill_costs
from slokit.cost.pricebook import (
    Pool,
    PriceBook,
    TokenPrice,
    default_pricebook,
    load_pricebook,
    loads_pricebook,
)
from slokit.cost.report import DIMENSIONS, CostReport, CostRow, cost_report, parse_dimensions

__all__ = [
    "DIMENSIONS",
    "WASTED_OUTCOMES",
    "CostReport",
    "CostRow",
    "FillReport",
    "Pool",
    "PoolPeriod",
    "PriceBook",
    "SelfHostedReport",
    "TokenPrice",
    "Unpriced",
    "attribute_self_hosted",
    "cost_report",
    "default_pricebook",
    "fill_costs",
    "load_pricebook",
    "loads_pricebook",
    "parse_dimensions",
]
