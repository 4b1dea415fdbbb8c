"""The cost of each stored request, in one SQL query: the recorded `cost_usd` when
there is one, else the share of a self-hosted deployment's GPU time, else the model's
list price from the price book, else nothing (unpriced, with the reason).

Self-hosted attribution (docs/cost.md): a pool's GPU time of one period (hourly by
default) costs `hourly_cost x replicas x period hours` and is split over the requests
it served in that period by their share of tokens (input + output); a period whose
requests carry no tokens splits evenly by request. Shares are computed over whole
periods and all services, whatever range or service the caller asks for, so a
request's cost does not depend on the question asked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from slokit.cost.pricebook import PriceBook

# Requests that used capacity and gave the user nothing (docs/cost.md, "wasted").
WASTED_OUTCOMES: tuple[str, ...] = ("error", "cancelled", "timeout", "shed")
# How a request's cost was found: `recorded`, `self_hosted`, `list_price`; unpriced:
# `no_price` (the model is not in the book) or `no_tokens` (a priced token count is null).
PRICED_SOURCES: tuple[str, ...] = ("recorded", "self_hosted", "list_price")
CACHED_TOKENS_KEY = "cached_tokens"
_DIGITS = "[0-9]{1,18}"  # attributes are text; anything else is not a token count
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_period(moment: datetime, minutes: int) -> datetime:
    step = timedelta(minutes=minutes)
    return EPOCH + ((moment - EPOCH) // step) * step


def ceil_period(moment: datetime, minutes: int) -> datetime:
    start = floor_period(moment, minutes)
    return start if start == moment else start + timedelta(minutes=minutes)


def _values(
    name: str, cols: list[tuple[str, str]], rows: list[tuple[Any, ...]], params: dict[str, object]
) -> str:
    """A CTE of constant rows, passed as parameters (names are user text)."""
    names = ", ".join(c for c, _ in cols)
    if not rows:
        nulls = ", ".join(f"NULL::{t} AS {c}" for c, t in cols)
        return f"{name} AS (SELECT {nulls} WHERE false)"
    tuples = []
    for i, row in enumerate(rows):
        cells = []
        for (col, sql_type), value in zip(cols, row, strict=True):
            key = f"{name}_{i}_{col}"
            params[key] = value
            cells.append(f"${key}::{sql_type}")
        tuples.append("(" + ", ".join(cells) + ")")
    return f"{name}({names}) AS (VALUES {', '.join(tuples)})"


def costed_sql(
    book: PriceBook,
    start: datetime,
    end: datetime,
    *,
    service: str | None = None,
    whole_periods: bool = False,
) -> tuple[str, dict[str, object]]:
    """A SELECT of the request events in [start, end) (of `service`, if given), one
    row each, with their labels, outcome and token counts and: `recorded_usd`,
    `pool`, `instance`, `period_start`, `period_usd`, `period_gpu_hours`, `tokens`,
    `share` (of the pool's period), `gpu_hours`, `attributed_usd`, `list_usd`, `cost`,
    `cost_source` and `wasted`.
    `whole_periods` widens the range to whole attribution periods."""
    minutes = book.period_minutes
    lo, hi = floor_period(start, minutes), ceil_period(end, minutes)
    params: dict[str, object] = {
        "period_us": minutes * 60_000_000,
        "lo_p": lo,
        "hi_p": hi,
        "lo": lo if whole_periods else start,
        "hi": hi if whole_periods else end,
    }
    prices = _values(
        "prices",
        [
            ("p_model", "VARCHAR"),
            ("in_price", "DOUBLE"),
            ("out_price", "DOUBLE"),
            ("cache_price", "DOUBLE"),
        ],
        [
            (name, p.input, p.output, p.input if p.cache_read is None else p.cache_read)
            for name, p in sorted(book.prices.items())
        ],
        params,
    )
    keys = [("deployment", p.name, p.name) for p in book.pools] + [
        ("model", m, p.name) for p in book.pools for m in p.models
    ]
    pool_keys = _values(
        "pool_keys",
        [("k_kind", "VARCHAR"), ("k_key", "VARCHAR"), ("k_pool", "VARCHAR")],
        keys,
        params,
    )
    hours = minutes / 60
    pool_cost = _values(
        "pool_cost",
        [
            ("c_pool", "VARCHAR"),
            ("c_instance", "VARCHAR"),
            ("period_usd", "DOUBLE"),
            ("period_gpu_hours", "DOUBLE"),
        ],
        [(p.name, p.instance, p.hourly_usd * hours, p.gpus_total * hours) for p in book.pools],
        params,
    )
    where_service = ""
    if service is not None:
        params["service"] = service
        where_service = "AND service = $service"
    attr = f"trim(e.attributes['{CACHED_TOKENS_KEY}'])"
    wasted = ", ".join(f"'{o}'" for o in WASTED_OUTCOMES)
    sql = f"""
WITH {prices}, {pool_keys}, {pool_cost},
ev AS (
  SELECT e.event_id, e.ts, e.service, e.route, e.model, e.tier, e.tenant, e.region,
         e.deployment, e.outcome, e.input_tokens, e.output_tokens,
         e.cost_usd AS recorded_usd,
         coalesce(kd.k_pool, km.k_pool) AS pool,
         epoch_us(e.ts) // $period_us AS period,
         coalesce(e.input_tokens, 0) + coalesce(e.output_tokens, 0) AS tokens,
         CASE WHEN regexp_full_match({attr}, '{_DIGITS}')
              THEN TRY_CAST({attr} AS BIGINT) END AS cached_attr
  FROM request_events e
  LEFT JOIN pool_keys kd ON kd.k_kind = 'deployment' AND kd.k_key = e.deployment
  LEFT JOIN pool_keys km ON km.k_kind = 'model' AND km.k_key = e.model
  WHERE e.ts >= $lo_p AND e.ts < $hi_p
),
shared AS (
  SELECT ev.*, c.c_instance AS instance, c.period_usd, c.period_gpu_hours,
         CASE WHEN ev.pool IS NOT NULL THEN sum(ev.tokens) OVER w END AS period_tokens,
         CASE WHEN ev.pool IS NOT NULL THEN count(*) OVER w END AS period_requests
  FROM ev LEFT JOIN pool_cost c ON c.c_pool = ev.pool
  WINDOW w AS (PARTITION BY ev.pool, ev.period)
),
priced AS (
  SELECT s.*,
         CASE WHEN s.input_tokens IS NOT NULL
              THEN least(coalesce(s.cached_attr, 0), s.input_tokens) END AS cached_tokens,
         p.p_model IS NOT NULL AS has_price,
         p.in_price, p.out_price, p.cache_price
  FROM shared s LEFT JOIN prices p ON p.p_model = s.model
  WHERE s.ts >= $lo AND s.ts < $hi {where_service}
),
split AS (
  SELECT *,
         CASE WHEN pool IS NULL THEN NULL
              WHEN period_tokens > 0 THEN tokens / period_tokens
              ELSE 1.0 / period_requests END AS share,
         CASE WHEN pool IS NULL THEN NULL
              WHEN period_tokens > 0 THEN period_usd * tokens / period_tokens
              ELSE period_usd / period_requests END AS attributed_usd,
         coalesce((input_tokens - cached_tokens) * in_price + cached_tokens * cache_price,
                  CASE WHEN in_price = 0 AND cache_price = 0 THEN 0.0 END)
           + coalesce(output_tokens * out_price, CASE WHEN out_price = 0 THEN 0.0 END)
           AS list_usd
  FROM priced
)
SELECT event_id, ts, service, route, model, tier, tenant, region, deployment, outcome,
       input_tokens, output_tokens, cached_tokens, tokens, recorded_usd, pool, instance,
       to_timestamp((period * $period_us) // 1000000) AS period_start,
       period_usd, period_gpu_hours, share, share * period_gpu_hours AS gpu_hours,
       attributed_usd, list_usd,
       CASE WHEN recorded_usd IS NOT NULL THEN 'recorded'
            WHEN pool IS NOT NULL THEN 'self_hosted'
            WHEN NOT has_price THEN 'no_price'
            WHEN list_usd IS NULL THEN 'no_tokens'
            ELSE 'list_price' END AS cost_source,
       coalesce(recorded_usd, attributed_usd, list_usd) AS cost,
       outcome IN ({wasted}) AS wasted
FROM split"""
    return sql, params
