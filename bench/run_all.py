"""`make bench`: every benchmark, one after another (never two at once on this
2-core machine), printed as the table the README's performance section holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> object:
    out = subprocess.run(
        [sys.executable, str(HERE / script), "--json", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    return json.loads(out.stdout)


def main() -> None:
    bulk = run("ingest_bulk.py")
    http = run("ingest_http.py")
    ev = run("evaluate.py")
    tick = run("alert_tick.py")
    reports = run("sla_reports.py")
    lat = run("gateway_latency.py")
    thr = run("gateway_throughput.py")
    over = run("gateway_overload.py")
    assert isinstance(bulk, list) and isinstance(http, dict) and isinstance(ev, dict)
    assert isinstance(tick, dict) and isinstance(reports, dict)
    assert isinstance(lat, dict) and isinstance(thr, dict) and isinstance(over, dict)
    print("| benchmark | slokit | baseline in the same run | target |")
    print("|---|---|---|---|")
    for r in bulk:
        print(
            f"| bulk ingest, {r['format']}, {r['events']:,} events | "
            f"{r['slokit_per_s']:,}/s ({r['slokit_with_12_rollups_per_s']:,}/s with the demo "
            f"spec's 12 rollups) | DuckDB loading the file unchecked: "
            f"{r['duckdb_raw_load_per_s']:,}/s (ratio {r['ratio_to_duckdb']}) | "
            f">= {r['target_per_s']:,}/s |"
        )
    print(
        f"| HTTP ingest, NDJSON, 1,000-event batches, {http['concurrency']} client threads "
        f"in a second process | {http['http_events_per_s']:,}/s "
        f"({http['http_with_12_rollups_per_s']:,}/s with 12 rollups) | in-process appends of "
        f"1,000 events: {http['in_process_append_per_s']:,}/s | >= 50,000/s |"
    )
    print(
        f"| first evaluation, demo spec (12 SLOs, {ev['statuses']} statuses), "
        f"{ev['events']:,} events | {ev['first_evaluation_s']} s | from raw events without "
        f"rollups: {ev['raw_scan_first_evaluation_s']} s ({ev['speedup_vs_raw_scan']}x) | "
        f"<= 3 s |"
    )
    print(
        f"| re-evaluation after one more minute ({ev['minute_events']:,} events) | "
        f"{ev['re_evaluation_after_1_minute_s']} s | with nothing new: "
        f"{ev['re_evaluation_no_new_data_s']} s | <= 0.2 s |"
    )
    print(f"| peak memory of the evaluating process | {ev['peak_rss_mb']:,} MB | | <= 2,048 MB |")
    print(
        f"| one alert evaluator tick after one more minute ({tick['statuses']} statuses) | "
        f"{tick['tick_after_1_minute_s']} s (first tick {tick['first_tick_s']} s) | the plain "
        f"re-evaluation: {tick['re_evaluation_after_1_minute_s']} s (ratio "
        f"{tick['tick_over_re_evaluation']}) | <= 0.2 s |"
    )

    print(
        f"| {reports['contracts']} SLA JSON reports, month {reports['month']} | "
        f"{reports['all_json_reports_s']} s | one scan per tenant and minute: "
        f"{reports['baseline_one_scan_s']} s (ratio {reports['ratio_to_scan']}) | <= 10 s |"
    )
    ol, st = lat["open_loop"], lat["streams"]
    print(
        f"| gateway added latency, 1,000 requests/s open loop | p50 {ol['added_p50_ms']} ms, "
        f"p99 {ol['added_p99_ms']} ms | fake-llm directly: p50 {ol['direct']['p50_ms']} ms, "
        f"p99 {ol['direct']['p99_ms']} ms | <= 1.5 / 4 ms |"
    )
    print(
        f"| gateway added TTFT, {st['streams']} concurrent streams | p50 "
        f"{st['added_ttft_p50_ms']} ms, p99 {st['added_ttft_p99_ms']} ms (long streams: "
        f"{st['long_streams']['added_ttft_p50_ms']} / {st['long_streams']['added_ttft_p99_ms']}"
        f" ms) | fake-llm directly: p50 {st['direct']['ttft_p50_ms']} ms | <= 2 / 5 ms |"
    )
    print(
        f"| gateway throughput, non-streaming, wrk | 1 worker {thr['gateway_1w']['rps']:,}/s, "
        f"2 workers {thr['gateway_2w']['rps']:,}/s | fake-llm directly "
        f"{thr['direct']['rps']:,}/s; LiteLLM {thr['litellm']['rps']:,}/s (ratio "
        f"{thr['gateway_1w_over_litellm']}) | >= 3,500 / 6,000/s; >= 30x LiteLLM |"
    )
    print(f"| gateway overload (3x capacity) | {json.dumps(over.get('tiers', over))[:300]} | | |")


if __name__ == "__main__":
    main()
