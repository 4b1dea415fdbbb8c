"""The demo traffic generator: shape, determinism and the scripted incidents."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from slokit.demo.traffic import DemoPlan, Incident, generate, plan
from slokit.events.schema import ANNOTATION, REQUEST_EVENT, SCORE_EVENT

END = datetime(2025, 6, 30, 12, 34, 56, tzinfo=UTC)  # floored to 12:34
DAYS = 14
RATE = 20.0


@pytest.fixture(scope="module")
def demo() -> DemoPlan:
    return plan(END, days=DAYS)


@pytest.fixture(scope="module")
def chunks(demo: DemoPlan) -> list[tuple[pa.Table, pa.Table]]:
    return list(generate(demo, rate_per_minute=RATE))


@pytest.fixture(scope="module")
def requests(chunks: list[tuple[pa.Table, pa.Table]]) -> pa.Table:
    return pa.concat_tables([r for r, _ in chunks]).combine_chunks()


@pytest.fixture(scope="module")
def scores(chunks: list[tuple[pa.Table, pa.Table]], requests: pa.Table) -> pa.Table:
    """Scores joined to the route and ts of the request they score."""
    table = pa.concat_tables([s for _, s in chunks]).combine_chunks()
    req = requests.select(["event_id", "route", "ts"]).rename_columns(
        ["request_id", "route", "request_ts"]
    )
    return table.join(req, "request_id").sort_by("event_id")


def us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000


def col(table: pa.Table, name: str) -> np.ndarray:
    """A column as numpy; timestamps as epoch microseconds."""
    column = table[name]
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False))


def during(table: pa.Table, incident: Incident, ts: str = "ts") -> np.ndarray:
    t = col(table, ts)
    return (t >= us(incident.start)) & (t < us(incident.end))


def test_plan_window_is_days_before_end_floored_to_the_minute(demo: DemoPlan) -> None:
    assert demo.end == datetime(2025, 6, 30, 12, 34, tzinfo=UTC)
    assert demo.start == demo.end - timedelta(days=DAYS)


@pytest.mark.parametrize(
    ("end", "days"),
    [
        pytest.param(END, 7, id="the shortest window, 7 days"),
        pytest.param(END, 30, id="the default 30 days"),
        pytest.param(datetime(2024, 2, 29, 23, 59, tzinfo=UTC), 90, id="90 days ending late"),
        pytest.param(datetime(2025, 1, 1, 0, 0, tzinfo=UTC), 8, id="8 days ending at midnight"),
    ],
)
@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed {s}") for s in (0, 7, 12345)])
def test_incidents_are_inside_the_window_on_whole_minutes_and_apart(
    end: datetime, days: int, seed: int
) -> None:
    p = plan(end, days=days, seed=seed)
    spans = sorted((i.start, i.end) for i in p.incidents)
    assert [i.kind for i in p.incidents] == [
        "cost_spike",
        "quality_regression",
        "latency_regression",
        "outage",
    ]
    assert p.start < spans[0][0] and spans[-1][1] < p.end
    gaps = [b_start - a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans)]
    assert min(gaps) > timedelta(hours=1)
    assert all(t.second == 0 and t.microsecond == 0 and t.tzinfo is UTC for s in spans for t in s)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"end": datetime(2025, 6, 30)}, "timezone-aware", id="a naive end"),
        pytest.param({"end": END, "days": 6}, "days must be >= 7", id="too few days"),
        pytest.param({"end": END, "seed": -1}, "seed must be >= 0", id="a negative seed"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(**kwargs)  # type: ignore[arg-type]


def test_generate_rejects_a_non_positive_rate(demo: DemoPlan) -> None:
    with pytest.raises(ValueError, match="rate_per_minute > 0"):
        next(generate(demo, rate_per_minute=0))


def test_schemas_are_exact(demo: DemoPlan, chunks: list[tuple[pa.Table, pa.Table]]) -> None:
    assert demo.annotations.schema == ANNOTATION
    assert len(chunks) == DAYS
    for req, sc in chunks:
        assert req.schema == REQUEST_EVENT
        assert sc.schema == SCORE_EVENT


def test_same_seed_gives_identical_tables_whatever_the_chunking() -> None:
    p = plan(END, days=7)
    a = list(generate(p, rate_per_minute=3, chunk_minutes=1440))
    b = list(generate(p, rate_per_minute=3, chunk_minutes=97, workers=1))
    c = list(generate(p, rate_per_minute=3, chunk_minutes=1440))
    for i in (0, 1):
        whole_a, whole_b = (pa.concat_tables([t[i] for t in x]) for x in (a, b))
        assert whole_a.equals(whole_b)
        assert all(x[i].equals(y[i]) for x, y in zip(a, c, strict=True))


def test_a_different_seed_gives_different_traffic() -> None:
    p = plan(END, days=7)
    a, _ = next(generate(p, rate_per_minute=3, seed=7))
    b, _ = next(generate(p, rate_per_minute=3, seed=8))
    assert not a.drop_columns(["event_id"]).equals(b.drop_columns(["event_id"]))


def test_event_ids_are_unique_and_scores_point_at_requests(
    requests: pa.Table, scores: pa.Table, chunks: list[tuple[pa.Table, pa.Table]]
) -> None:
    assert pc.count_distinct(requests["event_id"]).as_py() == requests.num_rows
    all_scores = sum(s.num_rows for _, s in chunks)
    assert scores.num_rows == all_scores  # every score joined to its request
    assert pc.count_distinct(scores["event_id"]).as_py() == all_scores
    assert requests["event_id"][0].as_py().startswith("d7-")


def test_timestamps_are_sorted_and_inside_the_window(demo: DemoPlan, requests: pa.Table) -> None:
    ts = col(requests, "ts")
    assert np.all(np.diff(ts) >= 0)
    assert ts[0] >= us(demo.start) and ts[-1] < us(demo.end)


def test_volume_follows_the_rate(requests: pa.Table) -> None:
    assert requests.num_rows == pytest.approx(RATE * 1440 * DAYS, rel=0.05)


def test_weekdays_are_busier_than_weekends(requests: pa.Table) -> None:
    days = col(requests, "ts") // 86_400_000_000
    per_day = dict(zip(*np.unique(days, return_counts=True), strict=True))
    weekend = [n for d, n in per_day.items() if (d + 3) % 7 >= 5]
    weekday = [n for d, n in per_day.items() if (d + 3) % 7 < 5]
    assert np.mean(weekday) > 1.4 * np.mean(weekend)


def test_nights_are_quieter_than_afternoons(requests: pa.Table) -> None:
    hour = col(requests, "ts") // 3_600_000_000 % 24
    night = np.isin(hour, [2, 3, 4]).sum()
    afternoon = np.isin(hour, [14, 15, 16]).sum()
    assert afternoon > 3 * night


@pytest.mark.parametrize(
    ("column", "shares"),
    [
        pytest.param(
            "route", {"chat": 0.50, "completion": 0.15, "embedding": 0.20, "rag": 0.15}, id="routes"
        ),
        pytest.param("tier", {"gold": 0.20, "silver": 0.50, "bronze": 0.30}, id="tiers"),
        pytest.param("region", {"us-east-1": 0.65, "eu-west-1": 0.35}, id="regions"),
    ],
)
def test_label_shares(requests: pa.Table, column: str, shares: dict[str, float]) -> None:
    counts = {d["values"]: d["counts"] for d in pc.value_counts(requests[column]).to_pylist()}
    assert {k: round(v / requests.num_rows, 2) for k, v in counts.items()} == pytest.approx(
        shares, abs=0.011
    )


def test_http_status_matches_outcome(demo: DemoPlan, requests: pa.Table) -> None:
    outage = during(requests, demo.incident("outage"))
    outcome, status = col(requests, "outcome")[~outage], col(requests, "http_status")[~outage]
    pairs = set(zip(outcome, status, strict=True))
    expected = {
        ("ok", 200),
        ("error", 500),
        ("timeout", 504),
        ("cancelled", 499),
        ("shed", 503),
        ("rate_limited", 429),
        ("client_error", 400),
    }
    assert pairs == expected


def test_fields_are_consistent(requests: pa.Table) -> None:
    ok = col(requests, "outcome") == "ok"
    embedding = col(requests, "route") == "embedding"
    out_tokens = col(requests, "output_tokens")
    assert np.all(out_tokens[embedding & ok] == 0)
    assert requests.filter(pa.array(embedding))["ttft_ms"].null_count == int(embedding.sum())
    gen = requests.filter(pa.array(ok & ~embedding))
    ttft, tpot, itl = (col(gen, c) for c in ("ttft_ms", "tpot_ms", "itl_max_ms"))
    has_tpot = ~np.isnan(tpot)
    assert np.all(itl[has_tpot] >= tpot[has_tpot])
    assert np.all(col(gen, "latency_ms") >= ttft)
    assert 0.0005 < np.mean(col(requests, "cold_start")) < 0.002
    rejected = requests.filter(pc.is_in(requests["outcome"], pa.array(["shed", "client_error"])))
    assert rejected["input_tokens"].null_count == rejected.num_rows
    assert pc.sum(rejected["cost_usd"]).as_py() == 0


def test_every_request_fails_during_the_outage(demo: DemoPlan, requests: pa.Table) -> None:
    inside = during(requests, demo.incident("outage"))
    outcome = col(requests, "outcome")
    assert inside.sum() > 100
    assert set(outcome[inside]) == {"error"}
    assert set(col(requests, "http_status")[inside]) == {503}
    assert np.mean(outcome[~inside] == "error") < 0.01


def test_chat_ttft_triples_during_the_latency_regression(
    demo: DemoPlan, requests: pa.Table
) -> None:
    incident = demo.incident("latency_regression")
    chat = requests.filter(pc.equal(requests["route"], "chat"))
    ttft = col(chat, "ttft_ms")
    day = timedelta(days=1)
    day_before = Incident("baseline", incident.start - day, incident.end - day, "same hours")
    before = np.nanmedian(ttft[during(chat, day_before)])
    assert np.nanmedian(ttft[during(chat, incident)]) > 2 * before
    deployment = col(requests, "deployment")
    inside = during(requests, incident)
    assert set(deployment[inside]) == {"v1.5.0"} and set(deployment[~inside]) == {"v1.4.2"}


def test_rag_judge_pass_rate_drops_during_the_quality_regression(
    demo: DemoPlan, scores: pa.Table
) -> None:
    judged = scores.filter(
        pc.and_(pc.equal(scores["route"], "rag"), pc.equal(scores["name"], "judge.faithfulness"))
    )
    inside = during(judged, demo.incident("quality_regression"), ts="request_ts")
    passed = col(judged, "passed")
    assert inside.sum() > 50
    assert passed[inside].mean() < 0.80
    assert passed[~inside].mean() > 0.90


def test_completion_cost_jumps_during_the_cost_spike(demo: DemoPlan, requests: pa.Table) -> None:
    completion = requests.filter(
        pc.and_(pc.equal(requests["route"], "completion"), pc.equal(requests["outcome"], "ok"))
    )
    inside = during(completion, demo.incident("cost_spike"))
    cost = col(completion, "cost_usd")
    assert cost[inside].mean() > 3 * cost[~inside].mean()
    assert set(col(completion, "model")[inside]) == {"gpt-4o"}


@pytest.mark.parametrize(
    ("incident", "kind", "text"),
    [
        pytest.param(
            "latency_regression", "deploy", "deploy v1.5.0", id="deploy at the latency regression"
        ),
        pytest.param(
            "quality_regression",
            "config",
            "prompt change: rag-v3 -> rag-v4",
            id="config at the prompt change",
        ),
        pytest.param(
            "cost_spike",
            "config",
            "model swap: completion -> gpt-4o",
            id="config at the model swap",
        ),
        pytest.param(
            "outage",
            "incident",
            "outage: inference pool unavailable, all requests 503",
            id="incident at the outage",
        ),
    ],
)
def test_annotations_mark_the_incident_starts(
    demo: DemoPlan, incident: str, kind: str, text: str
) -> None:
    rows = demo.annotations.to_pylist()
    start = demo.incident(incident).start
    assert any(r["ts"] == start and r["kind"] == kind and r["text"] == text for r in rows)


def test_the_rollback_is_annotated_at_the_latency_regression_end(demo: DemoPlan) -> None:
    end = demo.incident("latency_regression").end
    rows = [r for r in demo.annotations.to_pylist() if r["ts"] == end]
    assert [(r["kind"], r["labels"]) for r in rows] == [("deploy", [("deployment", "v1.4.2")])]


def test_scores_are_well_formed(scores: pa.Table) -> None:
    name, value, passed = (col(scores, c) for c in ("name", "value", "passed"))
    judge = np.char.startswith(name.astype(str), "judge.")
    assert np.all((value >= 0) & (value <= 1))
    route = col(scores, "route")
    assert set(route[name == "judge.faithfulness"]) == {"rag"}
    assert set(route[name == "judge.helpfulness"]) == {"chat", "completion"}
    assert np.array_equal(passed[judge], value[judge] >= 0.7)
    assert set(value[~judge]) == {0.0, 1.0} and np.array_equal(passed[~judge], value[~judge] == 1)
    assert set(col(scores, "source")) == {"judge", "feedback"}
    assert np.all(col(scores, "ts") > col(scores, "request_ts"))
    assert set(col(scores, "route")) == {"chat", "completion", "rag"}


def test_a_tiny_rate_still_yields_valid_tables() -> None:
    p = plan(END, days=7)
    out = list(generate(p, rate_per_minute=0.001, chunk_minutes=60 * 24 * 7))
    assert len(out) == 1
    assert out[0][0].schema == REQUEST_EVENT and out[0][1].schema == SCORE_EVENT
