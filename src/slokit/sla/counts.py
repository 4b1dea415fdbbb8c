"""Per-minute counts of the events contracts cover, read from the store in one scan.

Contracts that measure the same way (same services, routes, models, outcomes and
exclusions: `signature`) share one DuckDB scan of the month for all their customers.
The scan groups by customer, minute, outcome and each exclusion flag the contracts use,
and counts requests (plus, per latency target among them, those that missed it). Which
of those counts are failed, customer-caused or excluded is then decided here, per
group row, with numpy: a handful of plain aggregates keeps the scan near a bare count
(one filtered count per kind of request cost about a tenth of the scan each).

With `usage`, the same scan counts the covered requests without a price and sums the
cost of all of them, for fees billed from usage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from slokit.core.windows import from_minute
from slokit.sla.contract import Contract
from slokit.store.definitions import MINUTE
from slokit.store.duckdb_store import DuckDBStore

Columns = dict[str, np.ndarray]


def signature(c: Contract) -> tuple[Any, ...]:
    """Contracts with the same signature are measured from one scan."""
    return (
        c.services,
        c.routes,
        c.models,
        c.failed_outcomes,
        c.customer_outcomes,
        c.preview_models,
        c.preview_routes,
        c.ignored_backoff,
    )


def latency_target(c: Contract) -> tuple[str, float] | None:
    if c.latency_threshold_ms is None:
        return None
    return (c.latency_field, float(c.latency_threshold_ms))


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


def covered(c: Contract) -> str:
    """The events a contract covers, but for the customer: its services, routes and
    models. Its measurement and its usage fee read the same events."""
    where = [_in("service", c.services)]
    if c.routes:
        where.append(_in("route", c.routes))
    if c.models:
        where.append(_in("model", c.models))
    return " AND ".join(where)


def counts_sql(c: Contract, targets: list[tuple[str, float]], *, usage: bool = False) -> str:
    """Requests per customer, minute, outcome and exclusion flag (`preview`, `backoff`,
    only those `c` uses) for contracts that measure like `c`; `within_i` of them took no
    longer than latency target i (meeting it also takes outcome ok, a key here). With
    `usage`: those without a price, and the cost of all, as DECIMAL so the sum is exact
    whatever order DuckDB's threads add in."""
    # the store's minute, as the SLO rollups count it: whole microseconds // 60,000,000
    # (`epoch(ts) // 60` is a DOUBLE division, and the cast rounds it to the nearest
    # minute: a request 30 s or more into a minute would count in the next)
    keys = ["tenant", f"{MINUTE} AS minute", "outcome"]
    # coalesce: a missing label or attribute is NULL, and counts as not excluded
    preview = []
    if c.preview_models:
        preview.append(_in("model", c.preview_models))
    if c.preview_routes:
        preview.append(_in("route", c.preview_routes))
    if preview:
        keys.append(f"coalesce({' OR '.join(preview)}, FALSE) AS preview")
    if c.ignored_backoff:
        keys.append("coalesce(attributes['backoff_ignored'] = 'true', FALSE) AS backoff")
    cols = ["count(*) AS n"]
    for i, (name, limit) in enumerate(targets):
        cols.append(f"count(*) FILTER (WHERE {name} <= {limit!r}) AS within_{i}")
    if usage:
        cols += [
            "count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced",
            "coalesce(sum(CAST(cost_usd AS DECIMAL(38, 12))), 0) AS cost",
        ]
    return (
        f"SELECT {', '.join(keys + cols)} "
        f"FROM request_events WHERE ts >= $lo AND ts < $hi AND {covered(c)} "
        "AND tenant IN (SELECT unnest($customers)) GROUP BY ALL"
    )


def scan(
    store: DuckDBStore,
    members: list[Contract],
    lo: int,
    hi: int,
    targets: list[tuple[str, float]],
    *,
    usage: bool = False,
) -> dict[str, Columns]:
    """Per customer, one row per minute and group: `minute`, `total` (counted
    requests), `failed`, `slow_i` (counted requests that missed target i), the removed
    `customer_caused`, `preview` and `ignored_backoff`, and with `usage` `covered`,
    `unpriced` and `cost` (Decimal). A minute can have several rows: sum them."""
    c = members[0]
    rows = store.query(
        counts_sql(c, targets, usage=usage),
        {
            "lo": from_minute(lo),
            "hi": from_minute(hi),
            "customers": list(dict.fromkeys(m.customer for m in members)),
        },
    )
    n = rows.column("n").to_numpy()
    zeros = np.zeros(len(n), dtype=bool)
    outcome = rows.column("outcome")
    customer = _flag(pc.is_in(outcome, value_set=pa.array(c.customer_outcomes, pa.string())))
    preview = _flag(rows.column("preview")) if "preview" in rows.column_names else zeros
    backoff = _flag(rows.column("backoff")) if "backoff" in rows.column_names else zeros
    out = customer | preview | backoff
    failed = _flag(pc.is_in(outcome, value_set=pa.array(c.failed_outcomes, pa.string())))
    ok = _flag(pc.equal(outcome, "ok"))
    total = np.where(out, 0, n)
    cols: Columns = {
        "minute": rows.column("minute").to_numpy(),
        "total": total,
        "failed": np.where(failed, total, 0),
        "customer_caused": np.where(customer, n, 0),
        "preview": np.where(preview, n, 0),
        "ignored_backoff": np.where(backoff, n, 0),
    }
    for i in range(len(targets)):  # slow: counted, and not ok within the target
        within = np.where(ok, rows.column(f"within_{i}").to_numpy(), 0)
        cols[f"slow_{i}"] = np.where(out, 0, n - within)
    if usage:
        cols["covered"] = n
        cols["unpriced"] = rows.column("unpriced").to_numpy()
        cols["cost"] = rows.column("cost").to_numpy(zero_copy_only=False)
    return _split(rows.column("tenant"), cols)


def _flag(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean column as numpy; NULL is False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _split(tenant: pa.ChunkedArray, cols: Columns) -> dict[str, Columns]:
    """Each tenant's rows, in their original order."""
    tenants = tenant.combine_chunks().dictionary_encode()
    codes = tenants.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(tenants.dictionary))).tolist()
    ordered = {k: v[order] for k, v in cols.items()}
    out: dict[str, Columns] = {}
    start = 0
    for name, end in zip(tenants.dictionary.to_pylist(), ends, strict=True):
        out[str(name)] = {k: v[start:end] for k, v in ordered.items()}
        start = end
    return out
