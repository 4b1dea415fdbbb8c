"""Bad specs: each error names the file, line and field path and says what to do.

Cases start from one known-good spec and change one thing (Sloth's getGoodSLO)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slokit.errors import SpecError
from slokit.spec import load, loads

GOOD = """\
apiVersion: slokit/v1
service: chat
slos:
  - name: availability
    objective: 99.9
    window: 30d
    sli:
      availability: {}
  - name: ttft
    objective: 99
    filter: {route: chat}
    group_by: [tier]
    sli:
      latency: {field: ttft_ms, threshold_ms: 2000}
"""


def test_the_good_spec_loads() -> None:
    spec = loads(GOOD, "good.yaml")
    assert [s.name for s in spec.slos] == ["availability", "ttft"]
    assert spec.slos[0].objective == pytest.approx(0.999)
    assert spec.slos[1].filter == (("route", ("chat",)),)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "    objective: 99.9\n",
            "    objectiv: 99.9\n",
            "spec.yaml:5: slos[0].objectiv: unknown field `objectiv` — did you mean `objective`?",
            id="a misspelt field gets a did-you-mean hint",
        ),
        pytest.param(
            "    objective: 99.9\n",
            "    objective: 100\n",
            "spec.yaml:5: slos[0].objective: must be a percentage strictly between 0 and 100, "
            "got 100",
            id="an objective of 100 is rejected",
        ),
        pytest.param(
            "    objective: 99.9\n",
            "    objective: 0\n",
            "spec.yaml:5: slos[0].objective: must be a percentage strictly between 0 and 100, "
            "got 0",
            id="an objective of 0 is rejected",
        ),
        pytest.param(
            "    window: 30d\n",
            "    window: 30x\n",
            "spec.yaml:6: slos[0].window: invalid duration '30x'",
            id="a bad duration says which forms are valid",
        ),
        pytest.param(
            "      latency: {field: ttft_ms,",
            "      latency: {field: ttft,",
            "spec.yaml:14: slos[1].sli.latency.field: Input should be 'latency_ms', 'ttft_ms', "
            "'tpot_ms', 'itl_max_ms' or 'queue_ms', got 'ttft' — did you mean `ttft_ms`?",
            id="an unknown latency field suggests the closest",
        ),
        pytest.param(
            "threshold_ms: 2000}",
            "threshold_ms: -5}",
            "spec.yaml:14: slos[1].sli.latency.threshold_ms: Input should be greater than 0",
            id="a negative threshold is rejected",
        ),
        pytest.param(
            "      latency: {",
            "      latncy: {",
            "spec.yaml:14: slos[1].sli.latncy: unknown field `latncy` — did you mean `latency`?",
            id="a misspelt SLI kind gets a hint",
        ),
        pytest.param(
            "    group_by: [tier]\n",
            "    group_by: [tierr]\n",
            "spec.yaml:12: slos[1].group_by: unknown label `tierr` — did you mean `tier`?",
            id="an unknown group label suggests the closest",
        ),
        pytest.param(
            "  - name: ttft\n",
            "  - name: availability\n",
            "spec.yaml:9: slos[1].name: duplicate SLO name 'availability'",
            id="duplicate names are rejected",
        ),
        pytest.param(
            "    objective: 99\n",
            "",
            "slos[1].objective: required field is missing",
            id="a missing objective is named",
        ),
        pytest.param(
            "apiVersion: slokit/v1\n",
            "apiVersion: openslo/v1\n",
            "spec.yaml:1: apiVersion: unsupported apiVersion 'openslo/v1'",
            id="an OpenSLO file is pointed at the importer",
        ),
        pytest.param(
            "    sli:\n      availability: {}\n",
            "    sli:\n      availability: {}\n      cold_start: {}\n",
            "spec.yaml:7: slos[0].sli: give exactly one SLI kind, got 2",
            id="two SLI kinds in one SLO are rejected",
        ),
    ],
)
def test_bad_specs_name_file_line_and_field(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(SpecError) as info:
        loads(GOOD.replace(old, new, 1), "spec.yaml")
    assert any(message in p for p in info.value.problems), info.value.problems


def test_all_problems_are_reported_at_once() -> None:
    bad = GOOD.replace("objective: 99.9", "objectiv: 99.9").replace(
        "threshold_ms: 2000", "threshold_ms: 0"
    )
    with pytest.raises(SpecError) as info:
        loads(bad, "spec.yaml")
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("spec.yaml: 2 problems in spec")


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(SpecError, match=r"spec.yaml:4: not valid YAML: expected the node content"):
        loads("apiVersion: slokit/v1\nservice: x\nslos: [\n  - a: b\n", "spec.yaml")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope.yaml: cannot read spec"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("slos", "message"),
    [
        pytest.param(
            "  - name: c\n    objective: 99\n"
            "    sli: {composite: {members: [{slo: availabilty}]}}\n",
            "unknown member SLO `availabilty` — did you mean `availability`?",
            id="a composite member must exist",
        ),
        pytest.param(
            "  - name: c\n    objective: 99\n    sli: {composite: {members: [{slo: ttft}]}}\n",
            "member `ttft` is grouped; composites combine ungrouped SLOs",
            id="a composite member must not be grouped",
        ),
        pytest.param(
            "  - name: u\n    objective: 99\n    sli: {cost: {mean_usd: 0.01, tolerance: 10}}\n",
            "a unit-cost SLO takes its budget from `tolerance`; remove `objective`",
            id="unit cost takes no objective",
        ),
        pytest.param(
            "  - name: u\n    sli: {cost: {mean_usd: 0.01}}\n",
            "`mean_usd` needs `tolerance`",
            id="unit cost needs a tolerance",
        ),
        pytest.param(
            "  - name: q\n    objective: 99\n    filter: {route: chat}\n"
            "    sli: {quality: {score: judge.x}}\n",
            "quality SLIs read score events, which carry no route/model labels",
            id="quality SLIs cannot filter on request labels",
        ),
        pytest.param(
            "  - name: p\n    objective: 99\n    budgeting: {method: timeslices, slice: 7m}\n"
            "    sli: availability\n",
            "the slice must divide a day evenly",
            id="slices divide a day",
        ),
    ],
)
def test_checks_across_slos(slos: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        loads(GOOD + slos, "spec.yaml")
    assert any(message in p for p in info.value.problems), info.value.problems


def test_the_example_spec_loads_with_every_sli_kind() -> None:
    from importlib import resources

    from slokit.spec.v1 import SLI_KINDS

    text = resources.files("slokit.spec").joinpath("example.yaml").read_text()
    spec = loads(text, "example.yaml")
    assert {s.sli.kind for s in spec.slos} == set(SLI_KINDS)


def test_alerting_sections_are_checked_with_lines_and_hints(tmp_path: Path) -> None:
    text = """apiVersion: slokit/v1
service: svc
alerting:
  receivers:
    hook: {type: webhok, url: "http://127.0.0.1:9/x"}
    pd: {type: pagerduty}
  routes:
    - {severity: page, receivers: [hooks]}
policy:
  slos: [availabilty]
slos:
  - name: availability
    objective: 99.9
    sli: availability
"""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load(path)
    message = str(info.value)
    assert "alerting.receivers.hook" in message and "did you mean `webhook`" in message
    assert "alerting.receivers.pd" in message
    assert f"{path}:8: alerting.routes[0].receivers: unknown receiver `hooks`" in message
    assert "did you mean `hook`" in message
    assert "policy.slos: unknown SLO `availabilty`" in message


def test_an_alert_row_with_its_windows_swapped_is_named_by_line() -> None:
    text = """apiVersion: slokit/v1
service: svc
slos:
  - name: availability
    objective: 99.9
    sli: availability
    alerting:
      policy:
        - {severity: page, long: 5m, short: 1h, burn: 10}
        - {severity: ticket, long: 1d, short: 2h}
"""
    with pytest.raises(SpecError) as info:
        loads(text, "s.yaml")
    message = str(info.value)
    assert "s.yaml:9: slos[0].alerting.policy[0]" in message
    assert "`short` (1h) must be shorter than `long` (5m)" in message
    assert "s.yaml:10: slos[0].alerting.policy[1]" in message
    assert "give the threshold as `burn: 14.4` or as `budget: 2`" in message
