"""The month's fee: fixed, from a fees file, or billed from usage; bad forms and bad
fee rows named by file and line; the credit is a percent of the resolved fee."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from slokit.core.sla import Fee, usage_fee
from slokit.errors import SpecError
from slokit.events.validate import validate
from slokit.sla import render
from slokit.sla.compute import compute
from slokit.sla.contract import FeeSource, load_contracts, loads_contracts
from slokit.sla.fees import parse_fees
from slokit.store import DuckDBStore

CONTRACT = """\
apiVersion: slokit/v1
kind: contracts
contracts:
  - name: acme-gold
    customer: acme
    services: [llm-api]
    commitment: 99.9
    measurement: request_based
    credits: [{{below: 99.9, credit: 10}}, {{below: 50, credit: 50}}]
    fee: {fee}
    currency: {currency}
    timezone: Europe/Berlin
"""
FEES = "contract,month,fee\nacme-gold,2026-10,1200.50\nacme-gold,2026-11,1300\n"


def contracts(tmp_path: Path, fee: str, currency: str = "USD", fees: str = FEES) -> Path:
    (tmp_path / "fees.csv").write_text(fees)
    path = tmp_path / "contracts.yaml"
    path.write_text(CONTRACT.format(fee=fee, currency=currency))
    return path


# -- the contracts file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee", "source"),
    [
        pytest.param("12000", FeeSource("fixed", amount=12000.0), id="a number is a fixed fee"),
        pytest.param(
            "{from: fixed, amount: 12000}",
            FeeSource("fixed", amount=12000.0),
            id="a fixed fee written out",
        ),
        pytest.param("{from: usage}", FeeSource("usage"), id="usage without markup or minimum"),
        pytest.param(
            "{from: usage, markup: 20, minimum: 500}",
            FeeSource("usage", markup=20.0, minimum=500.0),
            id="usage with markup and minimum",
        ),
    ],
)
def test_each_fee_form_maps_to_its_source(tmp_path: Path, fee: str, source: FeeSource) -> None:
    (c,) = load_contracts(contracts(tmp_path, fee))
    assert c.fee == source


def test_a_fees_file_is_read_relative_to_the_contracts_file(tmp_path: Path) -> None:
    (c,) = load_contracts(contracts(tmp_path, "{from: file, path: fees.csv}"))
    assert (c.fee.kind, c.fee.path, c.fee.file) == ("file", "fees.csv", str(tmp_path / "fees.csv"))
    assert [(month, row.fee, row.line) for month, row in c.fee.months] == [
        ("2026-10", Decimal("1200.50"), 2),
        ("2026-11", Decimal("1300"), 3),
    ]


def test_a_fees_file_by_customer_serves_that_customers_contracts(tmp_path: Path) -> None:
    fees = "customer,month,fee,note\nacme,2026-10,999,agreed in June\nglobex,2026-10,5\n"
    (c,) = load_contracts(contracts(tmp_path, "{from: file, path: fees.csv}", fees=fees))
    assert c.fee.key == "customer"
    assert [(m, r.fee) for m, r in c.fee.months] == [("2026-10", Decimal("999"))]


@pytest.mark.parametrize(
    ("fee", "currency", "message"),
    [
        pytest.param(
            "{from: sales}",
            "USD",
            "contracts[0].fee.from: input should be 'fixed', 'usage' or 'file', got 'sales'",
            id="an unknown source names the valid ones",
        ),
        pytest.param(
            "[12000]",
            "USD",
            "contracts[0].fee: a fee is an amount (`fee: 12000`), billed from usage "
            "(`fee: {from: usage, markup: 20, minimum: 500}`) or read from a fees file "
            "(`fee: {from: file, path: fees.csv}`); got [12000]",
            id="a list is no fee",
        ),
        pytest.param(
            "usage",
            "USD",
            "contracts[0].fee: a fee is an amount (`fee: 12000`)",
            id="a bare word is no fee",
        ),
        pytest.param(
            "-5",
            "USD",
            "contracts[0].fee: input should be greater than or equal to 0",
            id="a negative fixed fee",
        ),
        pytest.param(
            "{from: usage, markup: -5}",
            "USD",
            "contracts[0].fee.markup: input should be greater than or equal to 0",
            id="a negative markup",
        ),
        pytest.param(
            "{from: usage, path: fees.csv}",
            "USD",
            "contracts[0].fee: `path` does not go with `from: usage`",
            id="a field of another source",
        ),
        pytest.param(
            "{from: file}",
            "USD",
            "contracts[0].fee: `from: file` needs `path`, a CSV with the columns contract "
            "(or customer), month and fee",
            id="a fees file without a path",
        ),
        pytest.param(
            "{from: usage, markups: 20}",
            "USD",
            "unknown field `markups` — did you mean `markup`?",
            id="a misspelt field",
        ),
        pytest.param(
            "{from: usage}",
            "EUR",
            "contracts[0].fee: a fee from usage sums the events' cost_usd: the contract's "
            "currency must be USD, got EUR",
            id="usage billed in another currency",
        ),
        pytest.param(
            "{from: file, path: nowhere.csv}",
            "USD",
            "contracts[0].fee.path: no fees file at",
            id="a fees file that is not there",
        ),
    ],
)
def test_bad_fees_are_named_by_line(tmp_path: Path, fee: str, currency: str, message: str) -> None:
    path = contracts(tmp_path, fee, currency)
    with pytest.raises(SpecError) as info:
        load_contracts(path)
    text = str(info.value)
    assert f"{path}:10: " in text, text
    assert message.lower() in text.lower(), text


@pytest.mark.parametrize(
    ("fees", "message"),
    [
        pytest.param(
            "contract,month,fee\nacme-gold,2026-13,10\n",
            "fees.csv:2: month: use YYYY-MM, like 2026-10, got '2026-13'",
            id="a month that is not one",
        ),
        pytest.param(
            "contract,month,fee\nacme-gold,2026-10,12k\n",
            "fees.csv:2: fee: a non-negative amount like 12000.50, got '12k'",
            id="a fee that is not a number",
        ),
        pytest.param(
            "contract,month,fee\nacme-gold,2026-10,-1\n",
            "fees.csv:2: fee: a non-negative amount like 12000.50, got '-1'",
            id="a negative fee",
        ),
        pytest.param(
            "contract,month,fee\n,2026-10,1\n",
            "fees.csv:2: contract: empty; name the contract this fee is for",
            id="a row for nobody",
        ),
        pytest.param(
            "contract,month,fee\nacme-gold,2026-10,1\n\nacme-gold,2026-10,2\n",
            "fees.csv:4: contract: a second fee for 'acme-gold' in 2026-10 (first on line 2)",
            id="two fees for one month",
        ),
        pytest.param(
            "name,month,amount\nacme-gold,2026-10,1\n",
            "fees.csv:1: header: a fees file has the columns `contract` (or `customer`), "
            "`month` and `fee`, got name, month, amount",
            id="a header without the columns",
        ),
        pytest.param(
            "contract,customer,month,fee\nacme-gold,acme,2026-10,1\n",
            "fees.csv:1: header: a fees file has the columns `contract` (or `customer`)",
            id="a header with both keys",
        ),
    ],
)
def test_bad_fee_rows_are_named_by_file_and_line(tmp_path: Path, fees: str, message: str) -> None:
    path = contracts(tmp_path, "{from: file, path: fees.csv}", fees=fees)
    with pytest.raises(SpecError) as info:
        load_contracts(path)
    assert f"{tmp_path}/{message}" in str(info.value), str(info.value)


def test_every_bad_row_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_fees("contract,month,fee\na,2026-1,1\nb,2026-10,x\n", "f.csv")
    assert info.value.problems == [
        "f.csv:2: month: use YYYY-MM, like 2026-10, got '2026-1'",
        "f.csv:3: fee: a non-negative amount like 12000.50, got 'x'",
    ]


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    (tmp_path / "fees.csv").write_bytes(("\ufeff" + FEES).encode())
    (tmp_path / "contracts.yaml").write_text(
        CONTRACT.format(fee="{from: file, path: fees.csv}", currency="USD")
    )
    (c,) = load_contracts(tmp_path / "contracts.yaml")
    assert len(c.fee.months) == 2


# -- the arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fee"),
    [
        pytest.param(
            (Decimal("812.40"), 1234, 0, 20.0, 0.0),
            Fee(
                Decimal("974.88"),
                "usage: 1,234 requests, cost 812.40 USD + 20% markup = 974.88 USD",
            ),
            id="markup on the cost",
        ),
        pytest.param(
            (Decimal("812.404999"), 1234, 0, 0.0, 0.0),
            Fee(Decimal("812.40"), "usage: 1,234 requests, cost 812.40 USD"),
            id="the cost is rounded to cents once, half up",
        ),
        pytest.param(
            (Decimal("0.125"), 1, 0, 0.0, 0.0),
            Fee(Decimal("0.13"), "usage: 1 request, cost 0.13 USD"),
            id="half a cent rounds up",
        ),
        pytest.param(
            (Decimal("10.005"), 3, 0, 10.0, 0.0),
            # 10.01 (not 10.005) + 10% = 11.011 -> 11.01: the shown numbers add up
            Fee(Decimal("11.01"), "usage: 3 requests, cost 10.01 USD + 10% markup = 11.01 USD"),
            id="the markup applies to the rounded cost",
        ),
        pytest.param(
            (Decimal("300"), 40, 2, 20.0, 500.0),
            Fee(
                Decimal("500.00"),
                "usage: 40 requests (2 without a price, counted at 0), cost 300.00 USD + 20% "
                "markup = 360.00 USD, raised to the minimum 500.00 USD",
            ),
            id="a minimum above the usage",
        ),
        pytest.param(
            (Decimal("0"), 0, 0, 0.0, 0.0),
            Fee(Decimal("0.00"), "usage: 0 requests, cost 0.00 USD"),
            id="no requests, no fee",
        ),
    ],
)
def test_a_usage_fee_is_the_cost_plus_markup_at_least_the_minimum(
    args: tuple[Decimal, int, int, float, float], fee: Fee
) -> None:
    cost, requests, unpriced, markup, minimum = args
    assert usage_fee(cost, requests, unpriced, markup=markup, minimum=minimum) == fee


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"unpriced": 3}, "unpriced requests must be within 0..2, got 3", id="unpriced"
        ),
        pytest.param(
            {"markup": -1.0}, "markup must be a non-negative percent, got -1.0", id="markup"
        ),
        pytest.param({"minimum": -1.0}, "minimum must be a non-negative amount", id="minimum"),
    ],
)
def test_a_usage_fee_refuses_impossible_inputs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        usage_fee(Decimal(1), 2, **kwargs)


# -- from the store -----------------------------------------------------------------------

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("service", pa.string()),
        ("tenant", pa.string()),
        ("outcome", pa.string()),
        ("cost_usd", pa.float64()),
    ]
)


def event(n: int, ts: datetime, cost: float | None, **over: str) -> dict[str, Any]:
    row = {"service": "llm-api", "tenant": "acme", "outcome": "ok", **over}
    return {"event_id": f"e{n}", "ts": ts, "cost_usd": cost, **row}


EVENTS = [
    # October in Berlin runs from 2026-09-30 22:00 to 2026-10-31 23:00 UTC
    event(1, datetime(2026, 9, 30, 21, 59, tzinfo=UTC), 1000.0),  # September in Berlin
    event(2, datetime(2026, 9, 30, 22, 0, tzinfo=UTC), 100.25),
    event(3, datetime(2026, 10, 9, 12, 0, tzinfo=UTC), 0.005, outcome="error"),
    event(4, datetime(2026, 10, 9, 12, 1, tzinfo=UTC), None),  # no price
    event(5, datetime(2026, 10, 9, 12, 2, tzinfo=UTC), 200.0, outcome="client_error"),
    event(6, datetime(2026, 10, 9, 12, 3, tzinfo=UTC), 1000.0, service="embed"),  # not covered
    event(7, datetime(2026, 10, 9, 12, 4, tzinfo=UTC), 1000.0, tenant="globex"),  # not acme
    event(8, datetime(2026, 10, 31, 22, 59, tzinfo=UTC), 99.75),
    event(9, datetime(2026, 10, 31, 23, 0, tzinfo=UTC), 1000.0),  # November in Berlin
]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DuckDBStore(tmp_path / "e.duckdb") as s:
        s.append("request", validate(pa.Table.from_pylist(EVENTS, schema=SCHEMA), "request").table)
        yield s


def test_a_usage_fee_bills_the_covered_requests_of_the_contract_month(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = contracts(tmp_path, "{from: usage, markup: 20}")
    (r,) = compute(store, load_contracts(path), "2026-10")
    # events 2, 3, 4, 5, 8: 100.25 + 0.005 + 200 + 99.75 = 400.005 -> 400.01; + 20% = 480.012
    assert r.fee == Fee(
        Decimal("480.01"),
        "usage: 5 requests (1 without a price, counted at 0), cost 400.01 USD + 20% markup "
        "= 480.01 USD",
    )
    # 1 failed of 4 counted (the client error is the customer's): 75%, the 10% tier
    assert r.measurement.uptime == 75.0
    assert r.credit.amount == Decimal("48.00")  # 10% of the usage fee, not of a fixed one
    assert r.credit.steps[-1] == "10% × 480.01 = 48.001 → 48.00 (half up)"
    d = r.to_dict()
    assert (d["fee"], d["fee_source"]) == (480.01, r.fee.source)
    assert d["warnings"] == [
        "1 of the 5 covered requests had no price (cost_usd empty) and count as 0 in the "
        "usage fee: price requests as they are stored with `slokit ingest --prices FILE`"
    ]


def test_a_usage_fee_of_a_month_in_progress_is_the_usage_so_far(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = contracts(tmp_path, "{from: usage, minimum: 50}")
    now = datetime(2026, 10, 9, 12, 2, tzinfo=UTC)  # events 2, 3 and 4 so far
    (r,) = compute(store, load_contracts(path), "2026-10", now=now)
    assert r.fee.source == ("usage: 3 requests (1 without a price, counted at 0), cost 100.26 USD")
    assert r.to_dict()["projection"]["summary"].endswith("(10% of 100.26)")


def test_a_fee_from_the_file_is_that_months_row(store: DuckDBStore, tmp_path: Path) -> None:
    path = contracts(tmp_path, "{from: file, path: fees.csv}")
    (october,) = compute(store, load_contracts(path), "2026-10")
    assert october.fee == Fee(Decimal("1200.50"), "fees file fees.csv, line 2")
    assert october.credit.steps[-1] == "10% × 1,200.50 = 120.05"
    assert october.to_dict()["warnings"] == []


def test_a_month_missing_from_the_fees_file_names_the_contract_and_month(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = contracts(tmp_path, "{from: file, path: fees.csv}")
    with pytest.raises(SpecError) as info:
        compute(store, load_contracts(path), "2026-12")
    assert str(info.value) == (
        f"{tmp_path / 'fees.csv'}: no fee for contract 'acme-gold' in 2026-12: add a row "
        "`acme-gold,2026-12,AMOUNT`"
    )


def test_a_customer_keyed_file_names_the_customer_when_a_month_is_missing(
    store: DuckDBStore, tmp_path: Path
) -> None:
    path = contracts(tmp_path, "{from: file, path: fees.csv}", fees="customer,month,fee\n")
    with pytest.raises(SpecError, match=r"no fee for customer 'acme' \(contract 'acme-gold'\)"):
        compute(store, load_contracts(path), "2026-10")


def test_a_fixed_fee_says_so(store: DuckDBStore) -> None:
    text = CONTRACT.format(fee="1000", currency="USD")
    (r,) = compute(store, loads_contracts(text), "2026-10")
    assert (r.to_dict()["fee"], r.to_dict()["fee_source"]) == (1000.0, "fixed monthly fee")


# -- in the reports -----------------------------------------------------------------------


def test_the_reports_show_where_the_fee_came_from(store: DuckDBStore, tmp_path: Path) -> None:
    path = contracts(tmp_path, "{from: usage, markup: 20}")
    result = compute(store, load_contracts(path), "2026-10")[0].to_dict()
    (summary, *_) = csv.DictReader(io.StringIO(render.to_csv([result])))
    assert (summary["fee"], summary["fee_source"]) == ("480.01", result["fee_source"])
    html = render.to_html([result], title="t")
    assert (
        "<tr><th>Monthly fee</th><td>480.01 USD (usage: 5 requests (1 without a price, "
        "counted at 0), cost 400.01 USD + 20% markup = 480.01 USD)</td></tr>"
    ) in html
