"""The live alert evaluator with real deliveries: a webhook receiver on 127.0.0.1, a
restart while a page fires (no second page, the resolve still goes out), and
`slokit serve` as a real process evaluating, notifying and answering /v1/alerts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from slokit.alerting.notify import verify_signature
from slokit.alerting.service import AlertService
from slokit.spec import loads
from slokit.store import DuckDBStore

from conftest import at
from test_alerting import traffic
from test_server_process import Served, free_port, stop, wait_healthy

SECRET = "webhook-secret"


class Hook:
    """A webhook receiver: records every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.signed: list[bool] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                hook.signed.append(
                    verify_signature(
                        SECRET,
                        self.headers.get("x-slokit-timestamp", ""),
                        raw,
                        self.headers.get("x-slokit-signature", ""),
                    )
                )
                hook.bodies.append(json.loads(raw))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet: the test reads `bodies`, not a request log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def actions(self) -> list[tuple[str, str]]:
        return [(b["action"], b["severity"]) for b in self.bodies]

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def spec_text(hook: Hook, interval: str = "30s") -> str:
    return f"""\
apiVersion: slokit/v1
service: svc
alerting:
  interval: {interval}
  link: https://dashboards.example/slo
  receivers:
    hook: {{type: webhook, url: "{hook.url}", secret: {SECRET}, backoff: 0.05}}
  routes:
    - {{severity: page, receivers: [hook]}}
slos:
  - name: availability
    objective: 99.9
    sli: availability
"""


def test_a_restart_while_a_page_fires_sends_no_second_page_and_still_resolves(
    tmp_path: Path, hook: Hook
) -> None:
    db = tmp_path / "alerts.duckdb"
    spec = loads(spec_text(hook))
    with DuckDBStore(db) as store:
        traffic(store, -1440, 120, 100, lambda m, n: (m >= 0) & (m < 20))
        service = AlertService(spec, store)
        for minute in (0, 1, 2, 3):
            service.tick(at(minute))
        service.close()
        deliveries = store.deliveries()
    assert hook.actions() == [("firing", "page")]
    assert hook.signed == [True]
    first = hook.bodies[0]
    assert first["slo"] == "availability" and first["link"] == "https://dashboards.example/slo"
    assert [(d["receiver"], d["action"], d["ok"]) for d in deliveries] == [("hook", "firing", True)]

    with DuckDBStore(db) as store:  # the server restarts
        service = AlertService(spec, store)
        assert [a.severity for a in service.engine.firing()] == ["page", "ticket"]
        for minute in range(4, 60):
            service.tick(at(minute))
        service.close()
        log = store.alert_log()
    assert hook.actions() == [("firing", "page"), ("resolved", "page")]
    resolved = hook.bodies[1]
    assert resolved["key"] == first["key"]  # the same alert, for dedup on the other side
    assert resolved["started_at"] == first["started_at"]
    page_log = [(r["action"], r["ts"]) for r in log if r["severity"] == "page"]
    assert [a for a, _ in page_log] == ["resolved", "firing"]  # newest first


def _minute_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def test_slokit_serve_evaluates_alerts_notifies_and_keeps_them_over_a_restart(
    tmp_path: Path, hook: Hook
) -> None:
    spec = tmp_path / "slokit.yaml"
    spec.write_text(spec_text(hook, interval="1s"))
    db, log = tmp_path / "events.duckdb", tmp_path / "serve.log"
    now = _minute_now()
    # two hours at 20 requests a minute; the last three whole minutes all fail
    events = [
        {
            "event_id": f"e{m}-{k}",
            "ts": (now - timedelta(minutes=m, seconds=-3 * k)).isoformat(),
            "service": "svc",
            "outcome": "error" if 1 <= m <= 3 else "ok",
        }
        for m in range(1, 121)
        for k in range(20)
    ]

    def start() -> Served:
        port = free_port()
        command = [
            sys.executable, "-m", "slokit.cli", "serve", "--db", str(db), "--spec", str(spec),
            "--port", str(port),
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        served = Served(f"http://127.0.0.1:{port}", db, process, log)
        wait_healthy(served)
        return served

    served = start()
    try:
        body = "\n".join(json.dumps(e) for e in events)
        r = httpx.post(
            f"{served.url}/v1/events",
            content=body,
            headers={"content-type": "application/x-ndjson"},
            timeout=30,
        )
        assert r.json()["accepted"] == len(events)
        hook.wait_for(1)
        assert hook.actions() == [("firing", "page")]
        alerts = httpx.get(f"{served.url}/v1/alerts", timeout=30).json()
        assert {(a["severity"], a["state"]) for a in alerts["alerts"]} >= {("page", "firing")}
        gate = httpx.get(f"{served.url}/v1/gate", params={"service": "svc"}, timeout=30).json()
        assert any(r["kind"] == "page_firing" for r in gate["reasons"])
        deliveries = httpx.get(f"{served.url}/v1/alerts/deliveries", timeout=30).json()
        assert [(d["receiver"], d["ok"]) for d in deliveries["deliveries"]] == [("hook", True)]
    finally:
        stop(served.process)

    served = start()  # the restart
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # let it evaluate a few times
            alerts = httpx.get(f"{served.url}/v1/alerts", timeout=30).json()
            if alerts["evaluations"] >= 3:
                break
            time.sleep(0.2)
        assert alerts["evaluations"] >= 3
        assert hook.actions() == [("firing", "page")]  # no second page
        assert any(a["severity"] == "page" for a in alerts["alerts"])
    finally:
        stop(served.process)


def test_firing_alerts_are_resent_to_alertmanager_every_minute_and_not_elsewhere(
    tmp_path: Path, hook: Hook
) -> None:
    am = Hook()  # stands in for Alertmanager's POST /api/v2/alerts (tests/test_alertmanager.py
    try:  # runs the real one)
        base = am.url.removesuffix("/hook")
        spec = loads(
            spec_text(hook).replace(
                "  routes:\n    - {severity: page, receivers: [hook]}",
                f'    am: {{type: alertmanager, url: "{base}"}}\n'
                "  routes:\n    - {severity: page, receivers: [hook, am]}",
            )
        )
        with DuckDBStore(tmp_path / "a.duckdb") as store:
            traffic(store, -1440, 120, 100, lambda m, n: (m >= 0) & (m < 20))
            service = AlertService(spec, store)
            for k in range(2, 11):  # every 30 s from minute 1 to minute 5
                service.tick(at(k / 2))
            service.close()
    finally:
        am.close()
    assert hook.actions() == [("firing", "page")]  # the webhook hears once
    sent = [b[0]["labels"]["severity"] for b in am.bodies]
    # Alertmanager: the firing at minute 1, then again at minutes 2, 3, 4 and 5
    assert sent == ["page"] * 5
