"""Contracts files: valid ones map to the model; bad ones get file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from slokit.errors import SpecError
from slokit.sla.contract import load_contracts, loads_contracts

GOOD = """\
apiVersion: slokit/v1
kind: contracts
contracts:
  - name: acme-enterprise
    customer: acme
    services: llm-api
    commitment: 99.9
    measurement: {method: downtime_minutes, period: 5m, threshold: 10}
    credits:
      - {below: 99.9, credit: 10}
      - {below: 99.0, credit: 25}
      - {below: 95.0, credit: 100}
    fee: 12000
    timezone: Europe/Berlin
    exclusions:
      notice: 72h
      maintenance:
        - {start: "2026-10-10T02:00:00", duration: 1h, announced: "2026-10-01T09:00:00",
           reason: planned upgrade}
        - {start: "2026-10-20T02:00:00", duration: 1h, announced: "2026-10-19T09:00:00",
           reason: late notice}
      incidents:
        - {start: "2026-10-05T10:00:00Z", end: "2026-10-05T11:00:00Z",
           cause: upstream_provider, reason: provider outage}
"""


def test_a_contract_maps_to_the_model_with_its_notice_checked() -> None:
    (c,) = loads_contracts(GOOD, "c.yaml")
    assert (c.name, c.customer, c.services, c.commitment) == (
        "acme-enterprise",
        "acme",
        ("llm-api",),
        99.9,
    )
    assert (c.method, c.period_minutes, c.threshold) == ("downtime_minutes", 5, 0.1)
    assert [(t.below, t.credit) for t in c.credits] == [(99.9, 10), (99.0, 25), (95.0, 100)]
    planned, late = c.maintenance
    assert planned.counts and "announced 209h ahead" in planned.why
    assert not late.counts and "only 17h ahead; the contract asks for 72h" in late.why
    assert c.incidents[0].reason == "upstream provider: provider outage"


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        pytest.param(
            ("{below: 99.0, credit: 25}", "{below: 99.9, credit: 25}"),
            9,
            "contracts[0].credits: overlapping tiers 1 and 2",
            id="overlapping tiers",
        ),
        pytest.param(
            ("{below: 95.0, credit: 100}", "{below: 95.0, credit: 150}"),
            9,
            "credit must be a percent of the fee in (0, 100], got 150",
            id="credit over 100%",
        ),
        pytest.param(
            ("method: downtime_minutes", "method: uptime_robot"),
            8,
            "input should be 'interval_error_rate', 'downtime_minutes', 'available_minutes', "
            "'request_based' or 'latency_attainment', got 'uptime_robot'",
            id="unknown method",
        ),
        pytest.param(
            ("fee: 12000", "fees: 12000"),
            13,
            "unknown field `fees` — did you mean `fee`?",
            id="misspelt field",
        ),
        pytest.param(
            ("timezone: Europe/Berlin", "timezone: Mars/Olympus"),
            14,
            "unknown time zone 'Mars/Olympus'",
            id="bad time zone",
        ),
    ],
)
def test_bad_contracts_are_named_by_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(SpecError) as info:
        load_contracts(path)
    text = str(info.value)
    assert f"{path}:{line}: " in text, text
    assert message.lower() in text.lower(), text


def test_a_tier_above_the_commitment_is_refused() -> None:
    bad = GOOD.replace("{below: 99.9, credit: 10}", "{below: 99.95, credit: 10}")
    with pytest.raises(SpecError, match="a tier starts above the commitment"):
        loads_contracts(bad, "c.yaml")


def test_a_file_that_is_not_a_contracts_file_says_what_it_should_be() -> None:
    with pytest.raises(SpecError, match="kind: contracts"):
        loads_contracts("apiVersion: slokit/v1\nservice: x\nslos: []\n", "c.yaml")
