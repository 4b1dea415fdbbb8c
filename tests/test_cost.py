"""Cost: price books, filling costs from list prices, self-hosted GPU time by token
share, and `slokit cost`. Every expected number is worked out by hand in a comment."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from slokit import cli_cost
from slokit.cost import (
    PoolPeriod,
    PriceBook,
    TokenPrice,
    Unpriced,
    attribute_self_hosted,
    cost_report,
    default_pricebook,
    fill_costs,
    load_pricebook,
    loads_pricebook,
)
from slokit.errors import SpecError
from slokit.events.validate import validate_records
from slokit.store import DuckDBStore

from conftest import T0, at, event, put

runner = CliRunner()
DOCS = Path(__file__).resolve().parent.parent / "docs"

# One known-good book; the error cases change one line of it.
GOOD = """\
models:
  gpt-4o:
    input_cost_per_token: 2.5e-06
    output_cost_per_token: 1.0e-05
    cache_read_input_token_cost: 1.25e-06
    aliases: [gpt-4o-2024-08-06]
  mini:
    input_cost_per_token: 1.0e-06
    output_cost_per_token: 2.0e-06
  embed:
    input_cost_per_token: 2.0e-08
    output_cost_per_token: 0.0
instances:
  h100x8:
    hourly_cost: 80.0
    gpus: 8
  small:
    hourly_cost: 3.0
    gpus: 1
deployments:
  llama-prod:
    instance: h100x8
    models: [llama-3.1-70b]
  llama-small:
    instance: small
    models: [llama-3.1-8b]
attribution_period: 1h
"""


@pytest.fixture
def book() -> PriceBook:
    return loads_pricebook(GOOD, source="book.yaml")


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_cost.register(app)
    return app


# -- price arithmetic -------------------------------------------------------------------

GPT4O = TokenPrice("gpt-4o", input=2.5e-06, output=1.0e-05, cache_read=1.25e-06)


@pytest.mark.parametrize(
    ("price", "tokens", "expected"),
    [
        # 1000 x 2.5e-6 + 500 x 1e-5 = 0.0025 + 0.005
        pytest.param(GPT4O, (1000, 500, 0), 0.0075, id="input and output at list price"),
        # 800 x 2.5e-6 + 200 x 1.25e-6 + 500 x 1e-5 = 0.002 + 0.00025 + 0.005
        pytest.param(GPT4O, (1000, 500, 200), 0.00725, id="cached tokens at the cache price"),
        # 1000 x 1.25e-6: the cache cannot hold more than the prompt
        pytest.param(GPT4O, (1000, 0, 5000), 0.00125, id="cached tokens capped at input"),
        # no cache price: 1000 x 1e-6 + 10 x 2e-6
        pytest.param(
            TokenPrice("mini", 1.0e-06, 2.0e-06, None),
            (1000, 10, 400),
            0.00102,
            id="without a cache price cached tokens cost the input price",
        ),
    ],
)
def test_token_price_arithmetic(
    price: TokenPrice, tokens: tuple[int, int, int], expected: float
) -> None:
    assert price.cost(*tokens) == pytest.approx(expected, rel=1e-12)


# -- filling cost_usd -------------------------------------------------------------------


def test_fill_costs_fills_only_missing_costs_of_priced_models(book: PriceBook) -> None:
    records = [
        event(1, event_id="a", model="gpt-4o", input_tokens=1000, output_tokens=500,
              attributes={"cached_tokens": "200"}),
        event(2, event_id="b", model="gpt-4o", input_tokens=1000, output_tokens=500,
              cost_usd=0.5),
        event(3, event_id="c1", model="mystery", input_tokens=10, output_tokens=10),
        event(4, event_id="c2", model="mystery", input_tokens=10, output_tokens=10),
        event(5, event_id="d", model="gpt-4o", output_tokens=10),
        event(6, event_id="e", model="llama-3.1-70b", input_tokens=10, output_tokens=10),
        event(7, event_id="f", model="gpt-4o", input_tokens=400, output_tokens=0,
              attributes={"cached_tokens": "lots"}),
        event(8, event_id="g", model="gpt-4o-2024-08-06", input_tokens=0, output_tokens=100),
        event(9, event_id="h", model="embed", input_tokens=1000),
    ]  # fmt: skip
    checked = validate_records(records, "request")
    assert checked.rejected == []

    filled, report = fill_costs(checked.table, book)

    costs = dict(zip(filled["event_id"].to_pylist(), filled["cost_usd"].to_pylist(), strict=True))
    assert costs == {
        "a": pytest.approx(0.00725, rel=1e-12),  # 800 x 2.5e-6 + 200 x 1.25e-6 + 500 x 1e-5
        "b": 0.5,  # recorded: kept although the list price says 0.0075
        "c1": None,  # no price: never guessed
        "c2": None,
        "d": None,  # input tokens unknown and priced: unknown cost
        "e": None,  # self-hosted: attributed per period, not here
        "f": pytest.approx(0.001, rel=1e-12),  # "lots" is no count: 400 x 2.5e-6
        "g": pytest.approx(0.001, rel=1e-12),  # alias of gpt-4o: 100 x 1e-5
        "h": pytest.approx(2e-05, rel=1e-12),  # 1000 x 2e-8; output free, so null is fine
    }
    assert report.to_dict() == {
        "rows": 9,
        "recorded": 1,
        "filled": 4,
        "self_hosted": 1,
        "unpriced_requests": 3,
        "unpriced": [
            {"model": "mystery", "reason": "no_price", "requests": 2},
            {"model": "gpt-4o", "reason": "no_tokens", "requests": 1},
        ],
    }
    assert filled.schema == checked.table.schema


# -- self-hosted attribution -----------------------------------------------------------


def _self_hosted_events() -> list[dict[str, Any]]:
    # llama-prod: $80 and 8 GPU-hours per hour. Hour 0: 100 + 300 + 600 = 1000 tokens.
    # Hour 1: two requests without tokens split the hour evenly. llama-small: $3/h.
    return [
        event(10, event_id="p1", service="a", model="llama-3.1-70b", input_tokens=60,
              output_tokens=40),
        event(40, event_id="p2", service="b", model="llama-3.1-70b", deployment="v2",
              input_tokens=200, output_tokens=100, cost_usd=9.99),
        event(50, event_id="p3", service="a", deployment="llama-prod", input_tokens=600,
              output_tokens=0),
        event(70, event_id="p4", service="a", deployment="llama-prod", outcome="error"),
        event(100, event_id="p5", service="a", deployment="llama-prod", outcome="shed"),
        event(20, event_id="s1", service="a", model="llama-3.1-8b", input_tokens=50),
        event(30, event_id="api", service="a", model="gpt-4o", input_tokens=1000,
              output_tokens=0),
    ]  # fmt: skip


def test_self_hosted_gpu_time_is_split_by_token_share(store: DuckDBStore, book: PriceBook) -> None:
    put(store, _self_hosted_events())

    report = attribute_self_hosted(store, book, at(30), at(90))

    # [00:30, 01:30) widens to the whole hours [00:00, 02:00)
    assert (report.start, report.end) == (at(0), at(120))
    assert report.periods == [
        PoolPeriod("llama-prod", "h100x8", at(0), 3, 1000, 80.0, 8.0),
        PoolPeriod("llama-prod", "h100x8", at(60), 2, 0, 80.0, 8.0),
        PoolPeriod("llama-small", "small", at(0), 1, 50, 3.0, 1.0),
    ]
    assert report.cost_usd == 163.0
    assert report.requests is not None
    rows = {r["event_id"]: r for r in report.requests.to_pylist()}
    assert {k: r["cost_usd"] for k, r in rows.items()} == pytest.approx(
        {
            "p1": 8.0,  # 80 x 100 / 1000
            "p2": 24.0,  # 80 x 300 / 1000, whatever cost it recorded
            "p3": 48.0,  # 80 x 600 / 1000
            "p4": 40.0,  # no tokens in the hour: 80 / 2
            "p5": 40.0,
            "s1": 3.0,  # alone in its pool's hour
        },
        rel=1e-12,
    )
    assert rows["p1"]["gpu_hours"] == pytest.approx(0.8, rel=1e-12)  # 8 x 0.1
    assert rows["p2"]["recorded_usd"] == 9.99
    assert {r["pool"] for r in rows.values()} == {"llama-prod", "llama-small"}


def test_cost_report_keeps_whole_hour_shares_for_a_partial_range(
    store: DuckDBStore, book: PriceBook
) -> None:
    put(store, _self_hosted_events())

    report = cost_report(store, book, at(30), at(90), by=["deployment"], service="a")

    # service a in [00:30, 01:30): p3 48 (600/1000 of hour 0, counting the other
    # service's and the earlier requests) + p4 40; the gpt-4o request 0.0025.
    spend = {r.group["deployment"]: r.spend_usd for r in report.rows}
    assert spend == pytest.approx({"llama-prod": 88.0, None: 0.0025}, rel=1e-12)
    assert report.total.self_hosted == 2
    assert report.total.from_book == 1
    # p4 ended in error: all its 40 is wasted
    assert report.total.wasted_usd == pytest.approx(40.0, rel=1e-12)


def test_recorded_cost_wins_over_attribution(store: DuckDBStore, book: PriceBook) -> None:
    put(store, _self_hosted_events())

    report = cost_report(store, book, at(0), at(120), by=["model"], service="b")

    assert [(r.group, r.spend_usd, r.recorded) for r in report.rows] == [
        ({"model": "llama-3.1-70b"}, 9.99, 1)
    ]


# -- slokit cost ----------------------------------------------------------------------


def _spend_events() -> list[dict[str, Any]]:
    return [
        # gpt-4o: 800 x 2.5e-6 + 200 x 1.25e-6 + 500 x 1e-5 = 0.00725
        event(1, event_id="g1", model="gpt-4o", route="chat", input_tokens=1000,
              output_tokens=500, attributes={"cached_tokens": "200"}),
        # 2000 x 2.5e-6 = 0.005, wasted
        event(2, "error", event_id="g2", model="gpt-4o", route="chat", input_tokens=2000,
              output_tokens=0),
        # recorded 0.02 (list price would say 0.01025)
        event(3, event_id="g3", model="gpt-4o", route="rag", input_tokens=100,
              output_tokens=1000, cost_usd=0.02),
        # mini: 1000 x 1e-6 + 1000 x 2e-6 = 0.003, wasted
        event(4, "timeout", event_id="m1", model="mini", route="chat", input_tokens=1000,
              output_tokens=1000),
        # 3000 x 1e-6 + 500 x 2e-6 = 0.004
        event(5, event_id="m2", model="mini", route="rag", input_tokens=3000,
              output_tokens=500),
        event(6, event_id="u1", model="mystery", route="chat", input_tokens=10,
              output_tokens=10),
        # llama-prod hour 0: $80 over 800 + 200 tokens -> 64 and 16 (wasted)
        event(10, event_id="l1", model="llama-3.1-70b", route="chat", input_tokens=600,
              output_tokens=200),
        event(20, "cancelled", event_id="l2", model="llama-3.1-70b", route="rag",
              input_tokens=150, output_tokens=50),
        # before --from: not counted
        event(-120, event_id="old", model="gpt-4o", input_tokens=1000, output_tokens=1000),
    ]  # fmt: skip


def _cost_json(tmp_path: Path, store: DuckDBStore, *args: str) -> dict[str, Any]:
    put(store, _spend_events())
    store.close()
    prices = tmp_path / "prices.yaml"
    prices.write_text(GOOD)
    result = runner.invoke(
        _app(),
        ["cost", "--db", str(store.path), "--prices", str(prices), "--json",
         "--from", T0.isoformat(), "--to", (T0 + timedelta(hours=1)).isoformat(), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_slokit_cost_by_model_json(tmp_path: Path, store: DuckDBStore) -> None:
    data = _cost_json(tmp_path, store, "--by", "model")

    approx = pytest.approx
    groups = {g["group"]["model"]: g for g in data["groups"]}
    assert list(groups) == ["llama-3.1-70b", "gpt-4o", "mini", "mystery"]  # by spend
    gpt = groups["gpt-4o"]
    assert gpt["requests"] == 3
    assert gpt["spend_usd"] == approx(0.03225, rel=1e-12)  # 0.00725 + 0.005 + 0.02
    assert gpt["cost_per_request_usd"] == approx(0.01075, rel=1e-12)  # 0.03225 / 3
    assert gpt["output_tokens"] == 1500
    assert gpt["cost_per_1k_output_tokens_usd"] == approx(0.0215, rel=1e-12)  # / 1.5
    assert gpt["tokens"] == 4600  # 1500 + 2000 + 1100
    assert gpt["tokens_per_usd"] == approx(4600 / 0.03225, rel=1e-12)
    assert gpt["wasted_usd"] == approx(0.005, rel=1e-12)
    assert gpt["wasted_share"] == approx(0.005 / 0.03225, rel=1e-12)
    assert (gpt["recorded"], gpt["priced_from_book"]) == (1, 2)
    llama = groups["llama-3.1-70b"]
    assert (llama["spend_usd"], llama["self_hosted"]) == (approx(80.0, rel=1e-12), 2)
    assert llama["cost_per_1k_output_tokens_usd"] == approx(320.0, rel=1e-12)  # 80 / 0.25
    assert llama["tokens_per_usd"] == approx(12.5, rel=1e-12)  # 1000 / 80
    assert llama["wasted_share"] == approx(0.2, rel=1e-12)  # 16 / 80
    mini = groups["mini"]
    assert mini["wasted_share"] == approx(3 / 7, rel=1e-12)  # 0.003 / 0.007
    # never silently 0: an unpriced group has no spend
    assert groups["mystery"] | {"group": None} == {
        "group": None,
        "requests": 1,
        "priced_requests": 0,
        "recorded": 0,
        "priced_from_book": 0,
        "self_hosted": 0,
        "unpriced": 1,
        "spend_usd": None,
        "cost_per_request_usd": None,
        "output_tokens": 0,
        "cost_per_1k_output_tokens_usd": None,
        "tokens": 0,
        "tokens_per_usd": None,
        "wasted_usd": None,
        "wasted_share": None,
    }

    total = data["total"]
    spend = 0.03225 + 0.007 + 80.0
    assert total["group"] == {}
    assert (total["requests"], total["priced_requests"], total["unpriced"]) == (8, 7, 1)
    assert (total["recorded"], total["priced_from_book"], total["self_hosted"]) == (1, 4, 2)
    assert total["spend_usd"] == approx(spend, rel=1e-12)
    assert total["output_tokens"] == 3250  # 1500 + 1500 + 250; mystery's 10 unpriced
    assert total["cost_per_1k_output_tokens_usd"] == approx(spend / 3.25, rel=1e-12)
    assert total["tokens"] == 11100  # 4600 + 5500 + 1000
    assert total["tokens_per_usd"] == approx(11100 / spend, rel=1e-12)
    assert total["wasted_usd"] == approx(0.005 + 0.003 + 16.0, rel=1e-12)
    assert total["wasted_share"] == approx(16.008 / spend, rel=1e-12)
    assert data["unpriced"] == [{"model": "mystery", "reason": "no_price", "requests": 1}]
    assert data["by"] == ["model"]
    assert data["wasted_outcomes"] == ["error", "cancelled", "timeout", "shed"]


def test_slokit_cost_groups_by_repeated_and_comma_separated_dimensions(
    tmp_path: Path, store: DuckDBStore
) -> None:
    data = _cost_json(tmp_path, store, "--by", "model,route", "--by", "route")

    assert data["by"] == ["model", "route"]
    keys = [(g["group"]["model"], g["group"]["route"]) for g in data["groups"]]
    assert keys[:2] == [("llama-3.1-70b", "chat"), ("llama-3.1-70b", "rag")]  # 64, 16
    assert len(keys) == 7
    assert data["total"]["requests"] == 8


def test_slokit_cost_without_by_prints_totals_and_names_unpriced_models(
    tmp_path: Path, store: DuckDBStore
) -> None:
    put(store, _spend_events())
    store.close()
    prices = tmp_path / "prices.yaml"
    prices.write_text(GOOD)
    result = runner.invoke(
        _app(),
        ["cost", "--db", str(store.path), "--prices", str(prices),
         "--from", T0.isoformat(), "--to", (T0 + timedelta(hours=1)).isoformat()],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "$80.04" in result.stdout  # 80.03925
    assert "4 request(s) without a recorded cost priced at the book's list prices" in result.stdout
    assert "1 request(s) unpriced, not in the spend: mystery (no price) 1" in result.stdout


def test_slokit_cost_rejects_an_unknown_dimension(tmp_path: Path, store: DuckDBStore) -> None:
    store.close()
    result = runner.invoke(_app(), ["cost", "--db", str(store.path), "--by", "modle"])
    assert result.exit_code == 2
    assert "--by: unknown dimension `modle` — did you mean `model`?" in result.stderr


# -- price books ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        pytest.param(
            "    output_cost_per_token: 2.0e-06",
            "    output_cost_per_tokens: 2.0e-06",
            "book.yaml:9: models.mini.output_cost_per_tokens: unknown field "
            "`output_cost_per_tokens` — did you mean `output_cost_per_token`? (valid: aliases, "
            "cache_read_input_token_cost, input_cost_per_token, litellm_provider, "
            "max_input_tokens, max_output_tokens, max_tokens, mode, output_cost_per_token)",
            id="a misspelt field gets a did-you-mean",
        ),
        pytest.param(
            "    output_cost_per_token: 2.0e-06",
            "    output_cost_per_token: -2.0e-06",
            "book.yaml:9: models.mini.output_cost_per_token: must be >= 0, got -2e-06",
            id="a negative price",
        ),
        pytest.param(
            "    gpus: 1",
            "    gpus: 0",
            "book.yaml:19: instances.small.gpus: must be >= 1, got 0",
            id="an instance without GPUs",
        ),
        pytest.param(
            "    instance: small",
            "    instance: smal",
            "book.yaml:25: deployments.llama-small.instance: unknown instance `smal` — did you "
            "mean `small`? (defined: h100x8, small)",
            id="a deployment on an undefined instance",
        ),
        pytest.param(
            "    models: [llama-3.1-8b]",
            "    models: [mini]",
            "book.yaml:26: deployments.llama-small.models: `mini` is already priced by "
            "models.mini; a model is priced one way, by token or by GPU time",
            id="a model priced by token and by GPU time",
        ),
        pytest.param(
            "    aliases: [gpt-4o-2024-08-06]",
            "    aliases: [mini]",
            "book.yaml:6: models.gpt-4o.aliases: `mini` is already priced by models.mini",
            id="an alias naming another model",
        ),
        pytest.param(
            "attribution_period: 1h",
            "attribution_period: 7m",
            "book.yaml:27: attribution_period: must divide a day evenly "
            "(15m, 30m, 1h, 2h, 1d, ...), got '7m'",
            id="a period that does not divide a day",
        ),
    ],
)
def test_a_bad_price_book_names_file_line_and_field(old: str, new: str, problem: str) -> None:
    assert old in GOOD
    with pytest.raises(SpecError) as info:
        loads_pricebook(GOOD.replace(old, new), source="book.yaml")
    assert info.value.problems == [problem]
    assert str(info.value) == f"book.yaml: 1 problem in price book\n  {problem}"


def test_a_json_price_book_loads_and_its_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"models": {"x": {"input_cost_per_token": 1e-6,
                                                 "output_cost_per_token": 2e-6}}}))  # fmt: skip
    assert load_pricebook(good).price("x") == TokenPrice("x", 1e-6, 2e-6, None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"input_cost_per_token": -1,
                                                "output_cost_per_token": 0}}}))  # fmt: skip
    with pytest.raises(SpecError) as info:
        load_pricebook(bad)
    assert info.value.problems == [f"{bad}: models.x.input_cost_per_token: must be >= 0, got -1"]


def test_the_bundled_book_prices_public_models_and_a_self_hosted_example() -> None:
    book = default_pricebook()
    assert book.price("gpt-4o-2024-08-06") == TokenPrice("gpt-4o", 2.5e-06, 1.0e-05, 1.25e-06)
    pool = book.pool_for(None, "llama-3.1-70b")
    assert pool is not None and (pool.hourly_usd, pool.gpus_total) == (98.32, 8)
    assert book.price("llama-3.1-70b") is None


def test_slokit_prices_checks_a_book(tmp_path: Path) -> None:
    good = tmp_path / "prices.yaml"
    good.write_text(GOOD)
    result = runner.invoke(_app(), ["prices", str(good), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["models"][0] == {
        "model": "embed",
        "priced_as": "embed",
        "input_per_1m_usd": pytest.approx(0.02, rel=1e-12),
        "output_per_1m_usd": 0.0,
        "cache_read_per_1m_usd": None,
    }
    assert data["self_hosted"][0]["hourly_usd"] == 80.0
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("gpus: 8", "gpu: 8"))
    result = runner.invoke(_app(), ["prices", str(bad)])
    assert result.exit_code == 2
    assert "did you mean `gpus`?" in result.stderr


def test_unpriced_is_reported_per_model() -> None:
    assert Unpriced(None, "no_price", 3).to_dict() == {
        "model": None,
        "reason": "no_price",
        "requests": 3,
    }


# -- docs -----------------------------------------------------------------------------


def test_every_cost_command_and_option_is_in_the_cli_docs() -> None:
    text = (DOCS / "cli.md").read_text()
    root: Any = typer.main.get_command(_app())
    for name, cmd in root.commands.items():
        assert f"## `slokit {name}" in text
        section = text.split(f"## `slokit {name}", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in section, f"{opt} of `slokit {name}` is not documented"


def test_the_cost_package_exports_exactly_its_all() -> None:
    import slokit.cost

    public = {n for n in dir(slokit.cost) if not n.startswith("_")}
    modules = {"attribution", "costed", "fill", "pricebook", "report"}
    assert public - modules == set(slokit.cost.__all__)
