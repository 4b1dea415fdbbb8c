"""OpenSLO v1 import and export: the example round-trips exactly, the export is golden,
foreign indicators import honestly with notes, bad input names its document.

Regenerate the golden files with `SLOKIT_UPDATE_GOLDEN=1 uv run pytest tests/test_openslo.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from slokit.cli import app
from slokit.errors import SpecError
from slokit.spec import load, loads, model
from slokit.spec.openslo import export_openslo, import_openslo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "src" / "slokit" / "spec" / "example.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden" / "openslo"
PROMETHEUS = GOLDEN / "prometheus.openslo.yaml"
UPDATE = os.environ.get("SLOKIT_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; see the module docstring"


# --- export, and the round trip -------------------------------------------------------

EXAMPLE_SPEC = load(EXAMPLE)
EXPORTED, EXPORT_NOTES = export_openslo(EXAMPLE_SPEC)
ROUND_TRIP_TEXT, ROUND_TRIP_NOTES = import_openslo(EXPORTED)
ROUND_TRIP = loads(ROUND_TRIP_TEXT)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(s.name, id=f"{s.name} ({s.sli.kind}) survives export and import")
        for s in EXAMPLE_SPEC.slos
    ],
)
def test_export_then_import_gives_each_slo_back(name: str) -> None:
    assert ROUND_TRIP.slo(name) == EXAMPLE_SPEC.slo(name)


def test_round_trip_keeps_the_spec_and_says_nothing() -> None:
    assert ROUND_TRIP.slos == EXAMPLE_SPEC.slos
    assert (ROUND_TRIP.service, ROUND_TRIP.description) == (
        EXAMPLE_SPEC.service,
        EXAMPLE_SPEC.description,
    )
    assert ROUND_TRIP_NOTES == []


def test_round_trip_covers_every_sli_kind() -> None:
    from slokit.spec.v1 import SLI_KINDS

    assert {s.sli.kind for s in EXAMPLE_SPEC.slos} == set(SLI_KINDS)


def test_export_matches_the_golden_file() -> None:
    assert_golden("example.openslo.yaml", EXPORTED)


def test_export_notes_name_the_composite_and_the_exclusions() -> None:
    assert EXPORT_NOTES == [
        "SLO/chat-experience: composite SLO exported as a `slokit` metric source; OpenSLO "
        "v1 has no composite SLOs, so only slokit can evaluate it",
        "SLO/availability-calendar: 2 maintenance exclusions carried in annotation "
        "slokit.dev/exclusions; OpenSLO v1 has no exclusions, so other tools will count "
        "that time",
    ]


def test_export_is_service_then_an_sli_and_an_slo_per_slokit_slo() -> None:
    docs = list(yaml.safe_load_all(EXPORTED))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs[:3]] == [
        ("Service", "llm-api"),
        ("SLI", "availability"),
        ("SLO", "availability"),
    ]
    assert len(docs) == 1 + 2 * len(EXAMPLE_SPEC.slos)
    assert {d["apiVersion"] for d in docs} == {"openslo/v1"}


def test_export_writes_a_unit_cost_target_as_one_minus_the_tolerance() -> None:
    slo = next(
        d
        for d in yaml.safe_load_all(EXPORTED)
        if d["kind"] == "SLO" and d["metadata"]["name"] == "unit-cost"
    )
    assert slo["spec"]["objectives"] == [{"displayName": "90% good events", "target": 0.9}]


def test_export_carries_min_events_and_labels_in_metadata() -> None:
    spec = loads(
        EXAMPLE.read_text().replace(
            "    group_by: [tier]",
            "    group_by: [tier]\n    min_events: 50\n    labels: {team: inference}",
        )
    )
    text, _ = export_openslo(spec)
    slo = list(yaml.safe_load_all(text))[2]
    assert slo["metadata"] == {
        "name": "availability",
        "labels": {"team": "inference"},
        "annotations": {"slokit.dev/min-events": "50"},
    }
    assert loads(import_openslo(text)[0]).slos == spec.slos


def test_export_notes_names_other_tools_may_reject() -> None:
    spec = loads(EXAMPLE.read_text().replace("name: cold-starts", "name: Cold_Starts"))
    _, notes = export_openslo(spec)
    assert notes[0] == (
        "SLO/Cold_Starts: the name is not an RFC 1123 label (lowercase letters, digits and "
        "'-', at most 63); some OpenSLO tools reject it"
    )


def test_export_through_the_cli_matches_the_golden_file() -> None:
    result = CliRunner().invoke(app, ["openslo", "export", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / "example.openslo.yaml").read_text(encoding="utf-8")
    assert "note: SLO/chat-experience" in result.stderr


# --- import of a hand-written Prometheus file -------------------------------------------

QUERIES = (
    "Imported from OpenSLO; this indicator was not translated, review it:\n"
    '  good (Prometheus): sum(rate(http_requests_total{service="checkout",code!~"5.."}[5m]))\n'
    '  total (Prometheus): sum(rate(http_requests_total{service="checkout"}[5m]))'
)
PROMETHEUS_NOTES = [
    "AlertPolicy/checkout-fast-burn: not imported; slokit specs have no alerting section yet",
    "SLO/checkout-availability: the Prometheus indicator was not translated; imported as a "
    "default availability SLI with its queries in the description; review it",
    "SLO/checkout-availability: spec.alertPolicies not imported; slokit specs have no "
    "alerting section yet",
    "SLO/checkout-availability: 2 objectives became 2 slokit SLOs: "
    "checkout-availability-good, checkout-availability-great",
]


def test_import_of_prometheus_gives_one_slo_per_objective() -> None:
    text, _ = import_openslo(PROMETHEUS.read_text())
    spec = loads(text)
    availability = model.SLI(
        "availability",
        bad_outcomes=("error", "timeout", "shed"),
        excluded_outcomes=("client_error", "cancelled", "rate_limited"),
    )
    month = model.WindowSpec("calendar", unit="month", timezone="America/New_York")
    common: dict[str, Any] = {
        "service": "checkout",
        "sli": availability,
        "window": month,
        "description": "Checkout requests that do not fail.\n" + QUERIES,
        "labels": (("team", "payments"), ("tier", "gold,silver")),
    }
    assert spec.service == "checkout"
    assert spec.description == "Checkout API behind the shop front."
    assert spec.slos == (
        model.SLO(
            name="checkout-availability-good",
            objective=0.99,
            budgeting=model.Budgeting("timeslices", 5, 0.95),
            **common,
        ),
        model.SLO(
            name="checkout-availability-great",
            objective=0.999,
            budgeting=model.Budgeting("timeslices", 1, 0.99),
            **common,
        ),
    )


def test_import_of_prometheus_notes_what_did_not_map() -> None:
    assert import_openslo(PROMETHEUS.read_text())[1] == PROMETHEUS_NOTES


def test_import_of_prometheus_matches_the_golden_file() -> None:
    assert_golden("prometheus.slokit.yaml", import_openslo(PROMETHEUS.read_text())[0])


def test_import_through_the_cli_writes_a_valid_spec(tmp_path: Path) -> None:
    out = tmp_path / "checkout.yaml"
    result = CliRunner().invoke(app, ["openslo", "import", str(PROMETHEUS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == (GOLDEN / "prometheus.slokit.yaml").read_text()
    assert "note: AlertPolicy/checkout-fast-burn" in result.stderr


# One known-good file, one field changed per case (paths index the `---` documents:
# 0 Service, 1 SLI, 2 SLO, 3 AlertPolicy).
DELETE = object()
Edit = Callable[[list[Any]], None]


def change(*path: Any, to: Any) -> Edit:
    def apply(docs: list[Any]) -> None:
        node = docs
        for key in path[:-1]:
            node = node[key]
        if to is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = to

    return apply


def second_slo(service: str) -> Edit:
    def apply(docs: list[Any]) -> None:
        other = yaml.safe_load(yaml.safe_dump(docs[2]))
        other["metadata"]["name"] = "search-availability"
        other["spec"]["service"] = service
        docs.append(other)

    return apply


def slokit_typed(docs: list[Any]) -> None:
    for role in ("good", "total"):
        docs[1]["spec"]["ratioMetric"][role]["metricSource"]["type"] = "slokit"


def edited(edit: Edit) -> str:
    docs = list(yaml.safe_load_all(PROMETHEUS.read_text()))
    edit(docs)
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.mark.parametrize(
    ("edit", "note"),
    [
        pytest.param(
            change(2, "spec", "timeWindow", 0, to={"duration": "1M", "isRolling": True}),
            "SLO/checkout-availability: rolling timeWindow 1M read as 30d; slokit "
            "rolling windows are minutes to weeks",
            id="a rolling month is read as 30 days with a note",
        ),
        pytest.param(
            change(2, "spec", "timeWindow", 0, "calendar", "startTime", to="2024-01-15 12:00:00"),
            "SLO/checkout-availability: calendar startTime 2024-01-15 12:00:00 ignored; "
            "slokit month windows start on the 1st at 00:00 (America/New_York)",
            id="an unaligned calendar start is ignored with a note",
        ),
        pytest.param(
            change(2, "spec", "timeWindow", to=DELETE),
            "SLO/checkout-availability: no timeWindow; slokit's default (30d rolling) applies",
            id="a missing time window falls back to the default with a note",
        ),
        pytest.param(
            change(0, "metadata", "name", to="shop"),
            "Service/shop: not imported; no SLO in this file belongs to it",
            id="a service no SLO names is reported",
        ),
        pytest.param(
            change(3, "kind", to="DataSource"),
            "DataSource/checkout-fast-burn: not imported; slokit evaluates SLIs from "
            "its own event store",
            id="a data source is reported",
        ),
    ],
)
def test_import_notes(edit: Edit, note: str) -> None:
    text, notes = import_openslo(edited(edit))
    loads(text)
    assert [n for n in notes if n not in PROMETHEUS_NOTES] == [note]


def test_import_renames_what_slokit_names_cannot_hold() -> None:
    text, notes = import_openslo(edited(change(2, "metadata", "name", to="shop/checkout")))
    assert [s.name for s in loads(text).slos] == ["shop-checkout-good", "shop-checkout-great"]
    assert notes[1] == (
        "SLO/shop/checkout: renamed 'shop-checkout'; slokit names use letters, digits, _ . -"
    )


def test_import_numbers_objectives_whose_names_repeat_or_are_missing() -> None:
    def third(docs: list[Any]) -> None:
        objectives = docs[2]["spec"]["objectives"]
        objectives[1]["displayName"] = "Good"
        objectives.append({"target": 0.9, "timeSliceTarget": 0.9, "timeSliceWindow": 10})

    text, notes = import_openslo(edited(third))
    assert [(s.name, s.budgeting.slice_minutes) for s in loads(text).slos] == [
        ("checkout-availability-good", 5),
        ("checkout-availability-2", 1),
        ("checkout-availability-3", 10),
    ]
    assert notes[-1] == (
        "SLO/checkout-availability: 3 objectives became 3 slokit SLOs: "
        "checkout-availability-good, checkout-availability-2, checkout-availability-3"
    )


def test_import_reads_an_inline_indicator_like_a_referenced_one() -> None:
    def inline(docs: list[Any]) -> None:
        slo = docs[2]
        slo["spec"]["indicator"] = docs.pop(1)
        del slo["spec"]["indicatorRef"]

    assert import_openslo(edited(inline)) == import_openslo(PROMETHEUS.read_text())


def test_import_of_a_unit_cost_slo_takes_its_budget_from_the_tolerance() -> None:
    unit_cost = (
        "timeZone: UTC\n  budgetingMethod: Occurrences\n  objectives:\n"
        "  - displayName: 90% good events\n    target: 0.9\n"
    )
    assert EXPORTED.count(unit_cost) == 1
    text = EXPORTED.replace(unit_cost, unit_cost.replace("0.9\n", "0.8\n"))
    imported, notes = import_openslo(text)
    assert loads(imported).slos == EXAMPLE_SPEC.slos
    assert notes == [
        "SLO/unit-cost: objective target 80% ignored; a unit-cost SLO's budget is its tolerance"
    ]


# --- bad input ---------------------------------------------------------------------------

NOT_YAML = PROMETHEUS.read_text() + "---\nkind: SLO\nmetadata: {name: [broken}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            NOT_YAML,
            "document 5: not valid YAML at line 81: expected ',' or ']', but got '}'",
            id="text that is not YAML names the broken document",
        ),
        pytest.param(
            edited(change(2, "apiVersion", to="openslo/v1alpha")),
            "SLO/checkout-availability: apiVersion: expected 'openslo/v1', got 'openslo/v1alpha'",
            id="a wrong apiVersion is refused",
        ),
        pytest.param(
            EXAMPLE.read_text(),
            "document 1: apiVersion: expected 'openslo/v1', got "
            "'slokit/v1'; this is already a slokit spec",
            id="a slokit spec is refused with a hint",
        ),
        pytest.param(
            edited(change(2, "spec", "indicatorRef", to="checkout-succes")),
            "SLO/checkout-availability: spec.indicatorRef: no SLI named "
            "'checkout-succes' in this file (SLIs here: checkout-success)",
            id="an indicatorRef to a missing SLI is refused",
        ),
        pytest.param(
            edited(change(3, "kind", to="Alert")),
            "Alert/checkout-fast-burn: kind: unknown kind 'Alert'; OpenSLO v1 kinds: "
            "SLO, SLI, Service, DataSource, AlertPolicy, AlertCondition, "
            "AlertNotificationTarget",
            id="an unknown kind is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "timeWindow", 0, "duration", to="1Y")),
            "SLO/checkout-availability: spec.timeWindow[0].duration: a calendar window "
            "of 1Y has no slokit equivalent; slokit calendar windows are 1w, 7d, 1M, "
            "1Q, 3M",
            id="a yearly calendar window is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "timeWindow", 0, "calendar", "timeZone", to="Mars/Olympus")),
            "SLO/checkout-availability: spec.timeWindow[0].calendar.timeZone: unknown "
            "time zone 'Mars/Olympus'; use an IANA name like Europe/Berlin",
            id="an unknown time zone is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "objectives", 0, "target", to=99)),
            "SLO/checkout-availability: spec.objectives[0].target: must be strictly "
            "between 0 and 1, got 99",
            id="a target given in percent is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "objectives", 1, "target", to=0.999)),
            "SLO/checkout-availability: spec.objectives[1]: give `target` (0..1) or "
            "`targetPercent` (0..100), exactly one",
            id="target and targetPercent together are refused",
        ),
        pytest.param(
            edited(change(2, "spec", "objectives", 0, "timeSliceWindow", to=DELETE)),
            "SLO/checkout-availability: spec.objectives[0].timeSliceWindow: None is "
            "not a slice slokit can use; give minutes, hours, days or weeks like 5m",
            id="Timeslices without a slice window is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "objectives", 0, "timeSliceTarget", to=1)),
            "SLO/checkout-availability: spec.objectives[0].timeSliceTarget: Timeslices "
            "needs a number strictly between 0 and 1 (slokit slice targets are below "
            "100%), got 1",
            id="a time slice target of 1 is refused",
        ),
        pytest.param(
            edited(change(2, "spec", "budgetingMethod", to="Occurences")),
            "SLO/checkout-availability: spec.budgetingMethod: expected one of "
            "Occurrences, Timeslices, RatioTimeslices, got 'Occurences'",
            id="an unknown budgeting method is refused",
        ),
        pytest.param(
            edited(second_slo("search")),
            "SLO/search-availability: spec.service: 'search' differs from 'checkout' of "
            "SLO/checkout-availability; a slokit spec holds one service, so split the "
            "file per service",
            id="SLOs of two services are refused",
        ),
        pytest.param(
            edited(lambda docs: docs.pop(2)),
            "no SLO documents: a slokit spec needs at least one `kind: SLO`",
            id="a file without SLOs is refused",
        ),
        pytest.param(
            edited(slokit_typed),
            "SLI/checkout-success: spec.ratioMetric.good.metricSource.spec.sli: "
            "required for a metricSource of type slokit",
            id="a slokit metric source without an sli is refused",
        ),
    ],
)
def test_bad_input_names_the_document(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        import_openslo(text)
    assert str(caught.value) == message
