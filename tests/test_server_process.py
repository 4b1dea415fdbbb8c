"""`slokit serve` as a real process: it listens, ingests over HTTP, reports metrics, and
what it acknowledged is in the DuckDB file after it stops."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from slokit.store.duckdb_store import DuckDBStore

from conftest import metric

TOKEN = "process-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EVENTS = 1_000
STARTUP_SECONDS = 20.0


def free_port() -> int:
    """A port free right now: bind to port 0, read what the kernel chose, let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    db: Path
    process: subprocess.Popen[bytes]
    log: Path


def wait_healthy(served: Served) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(
                f"slokit serve exited with {served.process.returncode}:\n{served.log.read_text()}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{served.url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"slokit serve not healthy after {STARTUP_SECONDS} s:\n{served.log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (uvicorn shuts down gracefully, runs the lifespan, then re-raises the
    signal, so a clean stop exits with -SIGTERM), SIGKILL if stuck."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    db, log = tmp_path / "events.duckdb", tmp_path / "serve.log"
    port = free_port()
    command = [
        sys.executable, "-m", "slokit.cli", "serve",
        "--db", str(db), "--host", "127.0.0.1", "--port", str(port), "--token", TOKEN,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    served = Served(f"http://127.0.0.1:{port}", db, process, log)
    try:
        wait_healthy(served)
        yield served
    finally:
        stop(process)


def test_served_events_are_durable_after_the_server_stops(served: Served) -> None:
    body = "\n".join(
        json.dumps(
            {
                "event_id": f"req-{n:05d}",
                "ts": f"2026-01-01T12:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "service": "chat-api",
                "model": "llama-3-8b",
                "outcome": "error" if n % 100 == 0 else "ok",
                "latency_ms": 100.0 + n,
            }
        )
        for n in range(EVENTS)
    )
    headers = {**AUTH, "content-type": "application/x-ndjson"}

    with httpx.Client(base_url=served.url, timeout=30.0) as client:
        unauthorized = client.post("/v1/events", content=body, headers={})
        ingested = client.post("/v1/events", content=body, headers=headers)
        metrics = client.get("/metrics")
    code = stop(served.process)

    assert unauthorized.status_code == 401
    assert (ingested.status_code, ingested.json()) == (
        200,
        {"accepted": EVENTS, "duplicates": 0, "rejected": 0, "errors": []},
    )
    assert metrics.status_code == 200
    records = "slokit_ingest_records_total"
    assert metric(metrics.text, records, kind="request", result="accepted") == EVENTS
    assert metric(metrics.text, "slokit_store_events", kind="request") == EVENTS
    assert metric(metrics.text, "slokit_http_requests_total", route="events", code="401") == 1
    assert code == -signal.SIGTERM, served.log.read_text()
    # The lifespan closed the store: DuckDB checkpointed and removed its write-ahead log.
    assert not served.db.with_name(served.db.name + ".wal").exists()
    with DuckDBStore(served.db, read_only=True) as store:
        assert store.count() == EVENTS
        summary = store.query(
            "SELECT count(DISTINCT event_id) AS ids, count(*) FILTER (outcome = 'error') AS "
            "errors, sum(latency_ms) AS latency FROM request_events"
        ).to_pylist()
    assert summary == [{"ids": EVENTS, "errors": 10, "latency": 100.0 * EVENTS + 499_500.0}]
