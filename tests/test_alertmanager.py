"""The alertmanager receiver against a real Alertmanager: a firing notification becomes
an active alert with our labels and annotations, and the resolved one ends it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from slokit.alerting.notification import Notification, alert_key
from slokit.alerting.notify import DeliveryRecord, Dispatcher, parse_receivers

from conftest import metric
from test_server_process import free_port

BINARY = shutil.which("prometheus-alertmanager")
STARTUP_SECONDS = 20.0
CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""

pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
    ".ci/run installs it)",
)


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def alerts(self, key: str, **params: str) -> list[dict[str, Any]]:
        """The alerts whose slokit_key is `key` (Alertmanager's own label matcher)."""
        query = {"filter": f'slokit_key="{key}"', **params}
        response = httpx.get(f"{self.url}/api/v2/alerts", params=query, timeout=5.0)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def received(self, status: str) -> float:
        """How many alerts of `status` (firing, resolved) the v2 API has accepted."""
        text = httpx.get(f"{self.url}/metrics", timeout=5.0).text
        return metric(text, "alertmanager_alerts_received_total", status=status, version="v2")


def wait_ready(am: Alertmanager) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if am.process.poll() is not None:
            pytest.fail(f"alertmanager exited with {am.process.returncode}:\n{am.log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{am.url}/-/ready", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"alertmanager not ready after {STARTUP_SECONDS} s:\n{am.log.read_text()}")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    assert BINARY is not None
    config, log, port = tmp_path / "alertmanager.yml", tmp_path / "alertmanager.log", free_port()
    config.write_text(CONFIG)
    command = [
        BINARY,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no gossip cluster, no second port
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    am = Alertmanager(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(am)
        yield am
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def notification(action: str, at: datetime) -> Notification:
    group: dict[str, str | None] = {"tier": "free", "model.name": "llama-3"}
    return Notification(
        action="firing" if action == "firing" else "resolved",
        key=alert_key("llm-api", "availability", group, "page"),
        service="llm-api",
        slo="availability",
        group=group,
        severity="page",
        reason="burn",
        summary="availability burns its error budget 15.2x over 1h",
        started_at=at - timedelta(minutes=10),
        at=at,
        objective=99.9,
        sli=99.82,
        budget_remaining=-0.125,
        burn_rates={"1h": 15.2, "5m": 16.1},
        windows=("1h", "5m") if action == "firing" else None,
        threshold=14.4 if action == "firing" else None,
        link="https://grafana.example/d/slo",
        labels={"team": "inference"},
    )


def test_alertmanager_shows_the_firing_alert_and_ends_it_when_resolved(
    alertmanager: Alertmanager,
) -> None:
    records: list[DeliveryRecord] = []
    receivers = parse_receivers({"am": {"type": "alertmanager", "url": alertmanager.url}})
    now = datetime.now(UTC).replace(microsecond=0)  # Alertmanager keeps milliseconds
    fired = notification("firing", now - timedelta(seconds=5))

    with Dispatcher(receivers, records.append) as dispatcher:
        dispatcher.submit(fired, ["am"])
        assert dispatcher.flush(10.0)
        active = alertmanager.alerts(fired.key, active="true")

        dispatcher.submit(notification("resolved", datetime.now(UTC)), ["am"])
        assert dispatcher.flush(10.0)
        after = alertmanager.alerts(fired.key, active="true")
    received = {s: alertmanager.received(s) for s in ("firing", "resolved")}

    assert [(r.action, r.ok, r.status) for r in records] == [
        ("firing", True, 200),
        ("resolved", True, 200),
    ]
    (alert,) = active
    assert alert["labels"] == {
        "alertname": "SLOBurnRate",
        "service": "llm-api",
        "slo": "availability",
        "severity": "page",
        "slokit_key": fired.key,
        "tier": "free",
        "model_name": "llama-3",
        "team": "inference",
    }
    assert alert["annotations"] == {
        "summary": "availability burns its error budget 15.2x over 1h",
        "description": "SLI 99.82% vs objective 99.9%; budget left -12.5%; "
        "burn rates 1h 15.2x, 5m 16.1x (threshold 14.4x); group tier=free, model.name=llama-3",
    }
    assert alert["status"]["state"] == "active"
    assert alert["generatorURL"] == "https://grafana.example/d/slo"
    assert datetime.fromisoformat(alert["startsAt"]) == fired.started_at
    assert after == []  # Alertmanager lists no alert whose endsAt has passed
    assert received == {"firing": 1, "resolved": 1}
