"""Each SLI kind on small hand-made event sets, with exact expected counts."""

from __future__ import annotations

import pytest

from slokit.engine import evaluate
from slokit.store import DuckDBStore

from conftest import at, event, put, spec_of

OUTCOME_MIX = [
    event(1, "ok"),
    event(1, "ok"),
    event(2, "error"),
    event(2, "timeout"),
    event(3, "shed"),
    event(3, "client_error"),
    event(4, "cancelled"),
    event(4, "rate_limited"),
]


@pytest.mark.parametrize(
    ("sli", "good", "valid"),
    [
        pytest.param("availability", 2, 5, id="defaults: shed is bad, client errors excluded"),
        pytest.param(
            "{availability: {bad_outcomes: [error, timeout]}}",
            3,
            5,
            id="shed not listed as bad counts good",
        ),
        pytest.param(
            "{availability: {excluded_outcomes: [client_error]}}",
            4,
            7,
            id="only client errors excluded: cancelled and rate limited count good",
        ),
    ],
)
def test_availability_counts(store: DuckDBStore, sli: str, good: int, valid: int) -> None:
    put(store, OUTCOME_MIX)
    spec = spec_of(f"  - name: a\n    objective: 99\n    sli: {sli}\n")
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (good, valid)


LATENCIES = [
    event(1, latency_ms=100, ttft_ms=50),
    event(1, latency_ms=500, ttft_ms=400),
    event(1, latency_ms=500.0001, ttft_ms=900),
    event(2, latency_ms=2000),  # no ttft
    event(2, "error", latency_ms=10, ttft_ms=10),  # failures are not valid for latency
]


@pytest.mark.parametrize(
    ("field", "threshold", "good", "valid"),
    [
        pytest.param("latency_ms", 500, 2, 4, id="threshold is inclusive"),
        pytest.param("ttft_ms", 500, 2, 3, id="events without the field are not valid"),
        pytest.param("latency_ms", 5000, 4, 4, id="all fast"),
    ],
)
def test_latency_threshold_counts(
    store: DuckDBStore, field: str, threshold: float, good: int, valid: int
) -> None:
    put(store, LATENCIES)
    spec = spec_of(
        f"  - name: l\n    objective: 99\n    sli: {{latency: {{field: {field}, "
        f"threshold_ms: {threshold}}}}}\n"
    )
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (good, valid)


def test_latency_percentile_judges_each_slice(store: DuckDBStore) -> None:
    # slice [0,5m): 100 requests, 99 at 100 ms, 1 at 9 s -> p99 (nearest rank) = 100 ms: good
    # slice [5,10m): 100 requests, 98 fast, 2 slow -> p99 = 9 s: bad
    # slice [10,15m): no requests -> not counted
    recs = [event(1, latency_ms=100) for _ in range(99)] + [event(1, latency_ms=9000)]
    recs += [event(6, latency_ms=100) for _ in range(98)] + [event(6, latency_ms=9000)] * 0
    recs += [event(7, latency_ms=9000), event(8, latency_ms=9500)]
    put(store, recs)
    spec = spec_of(
        "  - name: p\n    objective: 50\n    budgeting: {method: timeslices, slice: 5m}\n"
        "    sli: {latency_percentile: {percentile: 99, threshold_ms: 1000}}\n"
    )
    [s] = evaluate(spec, store, at(15))
    assert (s.good, s.valid) == (1, 2)
    assert s.error_budget.unit == "slices"


def test_goodput_needs_ok_and_every_bound(store: DuckDBStore) -> None:
    put(
        store,
        [
            event(1, ttft_ms=100, tpot_ms=20),  # good
            event(1, ttft_ms=3000, tpot_ms=20),  # ttft too slow
            event(1, ttft_ms=100, tpot_ms=200),  # tpot too slow
            event(1, "error", ttft_ms=100, tpot_ms=20),  # failed
            event(1, latency_ms=50),  # no ttft/tpot (an embedding): bounds not applied
            event(1, "client_error"),  # excluded
        ],
    )
    spec = spec_of(
        "  - name: g\n    objective: 90\n"
        "    sli: {goodput: {bounds: {ttft_ms: 2000, tpot_ms: 100}}}\n"
    )
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (2, 5)


def test_throughput_per_minute_slices(store: DuckDBStore) -> None:
    # target 0.05/s = 3 per minute. minute 0: 3 ok (good); minute 1: 2 ok, 0 failed
    # (all offered served: good); minute 2: 2 ok, 1 shed (bad); minute 3: nothing (good).
    put(
        store,
        [event(0.1 * i) for i in range(3)]
        + [event(1.5), event(1.6)]
        + [event(2.1), event(2.2), event(2.3, "shed")],
    )
    spec = spec_of(
        "  - name: t\n    objective: 50\n    budgeting: {method: timeslices, slice: 1m}\n"
        "    sli: {throughput: {min_per_second: 0.05}}\n"
    )
    s = evaluate(spec, store, at(4))[0]
    last4 = s.burn_rates["5m"]
    assert last4 is not None
    # Over the last 5 minutes (minutes -1..3): 5 slices, 1 bad.
    assert last4 == pytest.approx((1 / 5) / 0.5)


def test_quality_pass_rate_with_wilson_interval(store: DuckDBStore) -> None:
    scores = [
        {
            "ts": at(1).isoformat(),
            "service": "svc",
            "name": "judge.faithfulness",
            "value": v,
            "passed": v >= 0.7,
            "source": "judge",
        }
        for v in [0.9] * 45 + [0.2] * 5
    ]
    scores.append(
        {
            "ts": at(1).isoformat(),
            "service": "svc",
            "name": "user.thumbs",
            "value": 0,
            "passed": False,
            "source": "feedback",
        }
    )
    put(store, scores, kind="score")
    spec = spec_of(
        "  - name: q\n    objective: 90\n"
        "    sli: {quality: {score: judge.faithfulness, min_samples: 60}}\n"
    )
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (45, 50)
    assert s.sli == pytest.approx(90.0)
    assert s.interval is not None
    assert s.interval[0] == pytest.approx(78.64, abs=0.01)
    assert s.too_few_events is True  # 50 < min_samples 60


def test_quality_threshold_overrides_passed(store: DuckDBStore) -> None:
    put(
        store,
        [
            {"ts": at(1).isoformat(), "service": "svc", "name": "judge.x", "value": v}
            for v in (0.1, 0.5, 0.8, 0.95)
        ],
        kind="score",
    )
    spec = spec_of(
        "  - name: q\n    objective: 90\n    sli: {quality: {score: judge.x, threshold: 0.5}}\n"
    )
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (3, 4)


def test_cost_per_request_threshold(store: DuckDBStore) -> None:
    put(store, [event(1, cost_usd=c) for c in (0.001, 0.01, 0.0101, 0.5)] + [event(1)])
    spec = spec_of("  - name: c\n    objective: 99\n    sli: {cost: {max_usd: 0.01}}\n")
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (2, 4)


def test_unit_cost_budget_is_the_overspend_tolerance(store: DuckDBStore) -> None:
    # target $0.01 per successful request, 10% tolerance: 10 ok requests may cost $0.11.
    # They cost $0.105 plus a failed request's $0.01: overspend $0.015 of $0.01 allowed.
    put(store, [event(1, cost_usd=0.0105) for _ in range(10)] + [event(1, "error", cost_usd=0.01)])
    spec = spec_of("  - name: u\n    sli: {cost: {mean_usd: 0.01, tolerance: 10}}\n")
    [s] = evaluate(spec, store, at(10))
    assert s.objective == pytest.approx(90)
    assert s.valid == pytest.approx(0.10)  # expected spend
    assert s.valid - s.good == pytest.approx(0.015)  # overspend
    assert s.error_budget.total == pytest.approx(0.01)
    assert s.error_budget.consumed == pytest.approx(1.5)
    assert s.error_budget.unit == "usd"


def test_cold_start(store: DuckDBStore) -> None:
    put(store, [event(1, cold_start=c) for c in (True, False, False, False)] + [event(1)])
    spec = spec_of("  - name: cs\n    objective: 99\n    sli: cold_start\n")
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (3, 4)


def test_composite_occurrences_are_weighted_good_over_weighted_valid(store: DuckDBStore) -> None:
    put(
        store,
        [
            event(1, "ok", latency_ms=100),
            event(1, "error", latency_ms=100),
            event(1, "ok", latency_ms=9000),
            event(1, "ok", latency_ms=100),
        ],
    )
    spec = spec_of(
        "  - name: avail\n    objective: 99\n    sli: availability\n"
        "  - name: fast\n    objective: 99\n    sli: {latency: {threshold_ms: 1000}}\n"
        "  - name: both\n    objective: 99\n"
        "    sli: {composite: {members: [{slo: avail, weight: 2}, {slo: fast}]}}\n"
    )
    statuses = {s.slo: s for s in evaluate(spec, store, at(10))}
    assert (statuses["avail"].good, statuses["avail"].valid) == (3, 4)
    assert (statuses["fast"].good, statuses["fast"].valid) == (2, 3)
    assert (statuses["both"].good, statuses["both"].valid) == (2 * 3 + 2, 2 * 4 + 3)


def test_composite_timeslices_bad_when_any_member_bad(store: DuckDBStore) -> None:
    put(
        store,
        [
            event(1, "ok", latency_ms=100),
            event(6, "error", latency_ms=100),
            event(11, "ok", latency_ms=9000),
            event(16, "ok", latency_ms=100),
        ],
    )
    spec = spec_of(
        "  - name: avail\n    objective: 99\n    sli: availability\n"
        "  - name: fast\n    objective: 99\n    sli: {latency: {threshold_ms: 1000}}\n"
        "  - name: both\n    objective: 50\n    budgeting: {method: timeslices, slice: 5m}\n"
        "    sli: {composite: {members: [{slo: avail}, {slo: fast}]}}\n"
    )
    both = evaluate(spec, store, at(20), slo="both")[0]
    assert (both.good, both.valid) == (2, 4)


def test_filter_and_group_by(store: DuckDBStore) -> None:
    put(
        store,
        [
            event(1, route="chat", tier="gold"),
            event(1, "error", route="chat", tier="gold"),
            event(1, route="chat", tier="silver"),
            event(1, "error", route="rag", tier="silver"),
            event(1, route="chat", attributes={"region": "eu"}),
        ],
    )
    spec = spec_of(
        "  - name: a\n    objective: 99\n    filter: {route: chat}\n    group_by: [tier]\n"
        "    sli: availability\n"
    )
    got = {s.group["tier"]: (s.good, s.valid) for s in evaluate(spec, store, at(10))}
    assert got == {"gold": (1, 2), "silver": (1, 1), None: (1, 1)}
    spec = spec_of(
        "  - name: a\n    objective: 99\n    filter: {attributes.region: eu}\n"
        "    sli: availability\n"
    )
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (1, 1)


def test_other_services_are_not_counted(store: DuckDBStore) -> None:
    put(store, [event(1), {**event(1, "error"), "service": "other"}])
    spec = spec_of("  - name: a\n    objective: 99\n    sli: availability\n")
    [s] = evaluate(spec, store, at(10))
    assert (s.good, s.valid) == (1, 1)
