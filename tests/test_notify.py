"""Notifiers: what each receiver type is sent, and how the dispatcher retries, keeps
order, and keeps a receiver that is down from delaying the others. Every delivery goes
to a real HTTP server on 127.0.0.1 that records requests and can be told to fail."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from pydantic import BaseModel

from slokit.alerting.notification import Notification, alert_key
from slokit.alerting.notify import (
    AlertmanagerReceiver,
    DeliveryRecord,
    Dispatcher,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
    parse_receivers,
    verify_signature,
)
from slokit.alerting.receivers import alertmanager, label_name, pagerduty
from slokit.errors import SpecError

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
LINK = "https://grafana.example/d/slo"
SECRET = "s3cr3t"
FLUSH = 10.0  # seconds; generous, a passing run waits milliseconds


def firing(**changes: Any) -> Notification:
    """The known-good notification: a page on `availability` of the free tier."""
    base = Notification(
        action="firing",
        key=alert_key("llm-api", "availability", {"tier": "free"}, "page"),
        service="llm-api",
        slo="availability",
        group={"tier": "free"},
        severity="page",
        reason="burn",
        summary="availability burns its error budget 15.2x over 1h",
        started_at=T0,
        at=T0,
        objective=99.9,
        sli=99.82,
        budget_remaining=-0.125,
        burn_rates={"1h": 15.2, "5m": 16.1, "6h": 4.0, "30m": 3.9},
        windows=("1h", "5m"),
        threshold=14.4,
        link=LINK,
        labels={"team": "inference"},
    )
    return replace(base, **changes)


def resolved(**changes: Any) -> Notification:
    base = firing(action="resolved", at=T0 + timedelta(minutes=42), windows=None, threshold=None)
    return replace(base, **changes)


# -- a scriptable HTTP server ---------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """An HTTP server on a free 127.0.0.1 port: records every POST and answers with the
    scripted replies in order, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: deque[Reply] = deque()
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def arrive(self, request: Received) -> Reply:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            return self.replies.popleft() if self.replies else Reply()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = recorder.arrive(Received(self.path, headers, body, time.monotonic()))
            payload = reply.body.encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what arrived, not on access logs."""

    return Handler


def free_port() -> int:
    """A port nothing listens on (free right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server() -> Iterator[Callable[[], Recorder]]:
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder())
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()


@dataclass
class Harness:
    """A dispatcher with its delivery log and the backoff delays it asked to wait."""

    dispatcher: Dispatcher
    records: list[DeliveryRecord]
    delays: list[float]

    def deliver(self, *notifications: Notification, to: str = "r") -> list[DeliveryRecord]:
        for n in notifications:
            self.dispatcher.submit(n, [to])
        assert self.dispatcher.flush(FLUSH)
        return self.records


Dispatch = Callable[..., Harness]


@pytest.fixture
def dispatch(server: Callable[[], Recorder]) -> Iterator[Dispatch]:
    """dispatch({name: config}, **Dispatcher kwargs). Backoff sleeps are recorded, not
    slept, unless `sleep` is passed. Closed before the servers stop."""
    made: list[Dispatcher] = []

    def make(configs: dict[str, dict[str, Any]], **kwargs: Any) -> Harness:
        records: list[DeliveryRecord] = []
        delays: list[float] = []
        kwargs.setdefault("sleep", delays.append)
        kwargs.setdefault("rng", lambda: 0.5)
        made.append(Dispatcher(parse_receivers(configs), records.append, **kwargs))
        return Harness(made[-1], records, delays)

    yield make
    for dispatcher in made:
        dispatcher.close()


def outcome(record: DeliveryRecord) -> tuple[bool, int, int | None, str | None]:
    return record.ok, record.attempts, record.status, record.error


# -- webhook -----------------------------------------------------------------------------


def test_a_webhook_gets_the_notification_as_json_signed_over_timestamp_and_body(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    config = {
        "type": "webhook",
        "url": f"{hook.url}/alerts",
        "secret_env": "HOOK_SECRET",
        "headers": {"X-Team": "inference", "content-type": "text/plain"},
    }
    h = dispatch({"r": config}, clock=lambda: T0, environ={"HOOK_SECRET": SECRET})

    records = h.deliver(firing())

    (got,) = hook.requests
    timestamp, signature = got.headers["x-slokit-timestamp"], got.headers["x-slokit-signature"]
    assert got.path == "/alerts"
    assert got.json() == orjson.loads(orjson.dumps(firing().to_dict()))
    assert (got.headers["content-type"], got.headers["x-team"]) == ("application/json", "inference")
    assert timestamp == str(int(T0.timestamp()))
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, timestamp, got.body, signature)
    assert [outcome(r) for r in records] == [(True, 1, 200, None)]
    assert (records[0].receiver, records[0].receiver_type) == ("r", "webhook")


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        pytest.param("wrong", None, None, None, id="another secret fails"),
        pytest.param(None, None, b'{"action":"resolved"}', None, id="a tampered body fails"),
        pytest.param(None, "1793620801", None, None, id="a changed timestamp fails"),
        pytest.param(None, None, None, T0.timestamp() + 301, id="a replay after max_age fails"),
    ],
)
def test_a_signature_verifies_only_for_the_same_secret_time_and_body(
    secret: str | None, timestamp: str | None, body: bytes | None, now: float | None
) -> None:
    hook = parse_receivers({"h": {"type": "webhook", "url": "http://x", "secret": SECRET}})["h"]
    request = hook.render(firing(), now=T0, environ={})
    sent_at, header = request.headers["X-Slokit-Timestamp"], request.headers["X-Slokit-Signature"]
    assert verify_signature(SECRET, sent_at, request.body, header, max_age=300, now=T0.timestamp())

    assert not verify_signature(
        secret or SECRET,
        timestamp or sent_at,
        body or request.body,
        header,
        max_age=300,
        now=now or T0.timestamp(),
    )


def test_a_webhook_without_a_secret_is_not_signed(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    h = dispatch({"r": {"type": "webhook", "url": hook.url}})

    h.deliver(firing())

    assert "x-slokit-signature" not in hook.requests[0].headers
    assert "x-slokit-timestamp" not in hook.requests[0].headers


def test_a_missing_secret_variable_fails_the_delivery_without_sending(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    h = dispatch({"r": {"type": "webhook", "url": hook.url, "secret_env": "NOPE"}}, environ={})

    records = h.deliver(firing())

    assert hook.requests == []
    assert [outcome(r) for r in records] == [
        (False, 0, None, "secret_env: environment variable NOPE is not set (or is empty)")
    ]


# -- Slack -------------------------------------------------------------------------------


def _slack_texts(message: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    header = next(b for b in message["blocks"] if b["type"] == "header")["text"]["text"]
    fields = [f["text"] for b in message["blocks"] for f in b.get("fields", [])]
    buttons = [e["url"] for b in message["blocks"] for e in b.get("elements", [])]
    return header, fields, buttons


def test_slack_gets_blocks_with_the_slo_its_budget_and_the_firing_burn_rates(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    slack = server()
    h = dispatch({"r": {"type": "slack", "url": slack.url}})

    h.deliver(firing())

    message = slack.requests[0].json()
    header, fields, buttons = _slack_texts(message)
    assert header == "[PAGE] availability (llm-api)"
    assert fields == [
        "*Service*\nllm-api",
        "*Group*\ntier=free",
        "*SLI vs objective*\n99.82% vs 99.9%",
        "*Budget left*\n-12.5%",
        "*Burn rates*\n1h 15.2x, 5m 16.1x (threshold 14.4x)",
        "*Started*\n2026-11-02T12:00:00Z",
    ]
    assert buttons == [LINK]
    assert message["text"] == (
        "[PAGE] availability (llm-api): availability burns its error budget 15.2x over 1h"
    )


def test_slack_says_resolved_when_the_alert_is_over(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    slack = server()
    h = dispatch({"r": {"type": "slack", "url": slack.url}})

    h.deliver(resolved(link=None, summary="availability is back within budget"))

    message = slack.requests[0].json()
    header, fields, buttons = _slack_texts(message)
    assert header == "[RESOLVED page] availability (llm-api)"
    assert message["text"] == (
        "[RESOLVED page] availability (llm-api): resolved — availability is back within budget"
    )
    assert "*Resolved*\n2026-11-02T12:42:00Z" in fields
    assert "*Burn rates*\n1h 15.2x, 5m 16.1x, 6h 4x, 30m 3.9x" in fields
    assert buttons == []


def test_slack_escapes_its_control_characters() -> None:
    slack = parse_receivers({"s": {"type": "slack", "url": "https://hooks.slack.example/x"}})["s"]
    body = json.loads(slack.render(firing(summary="p99 <2s & rising"), now=T0, environ={}).body)
    assert body["blocks"][1]["text"]["text"] == "p99 &lt;2s &amp; rising"


# -- PagerDuty ---------------------------------------------------------------------------


def test_pagerduty_triggers_then_resolves_the_same_incident(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    pd = server()
    pd.script(Reply(202), Reply(202))
    config = {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": f"{pd.url}/v2/enqueue"}
    h = dispatch({"r": config}, environ={"PD_KEY": "R0UT1NG"})

    records = h.deliver(firing(), resolved())

    trigger, resolve = (r.json() for r in pd.requests)
    assert [r.path for r in pd.requests] == ["/v2/enqueue", "/v2/enqueue"]
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UT1NG"
    assert trigger["payload"]["source"] == "llm-api"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == (
        "[PAGE] availability (llm-api): availability burns its error budget 15.2x over 1h"
    )
    assert trigger["payload"]["custom_details"]["burn_rates"]["1h"] == 15.2
    assert trigger["links"] == [{"href": LINK, "text": "availability (llm-api)"}]
    assert resolve == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert trigger["dedup_key"] == firing().key
    assert [outcome(r) for r in records] == [(True, 1, 202, None)] * 2


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        pytest.param("page", "critical", id="a page is critical"),
        pytest.param("ticket", "warning", id="a ticket is a warning"),
        pytest.param("fyi", "info", id="a custom severity is info"),
    ],
)
def test_pagerduty_severity_follows_the_alert_severity(severity: str, expected: str) -> None:
    assert pagerduty(firing(severity=severity), "k")["payload"]["severity"] == expected


# -- Alertmanager (the real binary is in test_alertmanager.py) -----------------------------


def test_an_alertmanager_alert_carries_sanitised_labels_and_ours_win() -> None:
    n = firing(
        group={"model.name": "llama-3", "9region": "eu", "tier": None},
        labels={"team": "inference", "severity": "low", "slo-owner": "ana"},
    )
    alert = alertmanager(n)
    assert alert["labels"] == {
        "team": "inference",
        "slo_owner": "ana",
        "model_name": "llama-3",
        "_9region": "eu",
        "alertname": "SLOBurnRate",
        "service": "llm-api",
        "slo": "availability",
        "severity": "page",
        "slokit_key": n.key,
    }
    assert alert["startsAt"] == "2026-11-02T12:00:00Z"
    assert "endsAt" not in alert
    assert alert["generatorURL"] == LINK


def test_a_resolved_alertmanager_alert_ends_at_the_resolve_time() -> None:
    alert = alertmanager(resolved(reason="no_data"))
    assert alert["labels"]["alertname"] == "SLONoData"
    assert alert["endsAt"] == "2026-11-02T12:42:00Z"
    assert alert["annotations"]["description"] == (
        "resolved; SLI 99.82% vs objective 99.9%; budget left -12.5%; "
        "burn rates 1h 15.2x, 5m 16.1x, 6h 4x, 30m 3.9x; group tier=free"
    )


@pytest.mark.parametrize(
    ("raw", "name"),
    [("tier", "tier"), ("model.name", "model_name"), ("9x", "_9x"), ("", "_"), ("é", "_")],
)
def test_label_names_are_made_valid(raw: str, name: str) -> None:
    assert label_name(raw) == name


# -- retries -----------------------------------------------------------------------------


def test_two_503s_then_200_take_three_attempts_with_jittered_exponential_backoff(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    hook.script(Reply(503), Reply(503))
    h = dispatch({"r": {"type": "webhook", "url": hook.url, "backoff": 2.0}}, rng=lambda: 0.25)

    records = h.deliver(firing())

    assert len(hook.requests) == 3
    assert h.delays == [0.25 * 2.0, 0.25 * 4.0]
    assert [outcome(r) for r in records] == [(True, 3, 200, None)]


def test_backoff_is_capped_and_a_receiver_that_stays_down_is_given_up(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    hook.script(*[Reply(500, body="upstream\n broke")] * 5)
    config = {"type": "webhook", "url": hook.url, "backoff": 10, "max_backoff": 15}
    h = dispatch({"r": config})

    records = h.deliver(firing())

    assert h.delays == [5.0, 7.5, 7.5, 7.5]  # 0.5 x min(15, 10, 20, 40, 80)
    assert [outcome(r) for r in records] == [(False, 5, 500, "HTTP 500: upstream broke")]


def test_a_400_is_not_retried(server: Callable[[], Recorder], dispatch: Dispatch) -> None:
    hook = server()
    hook.script(Reply(400, body="invalid routing key"))
    h = dispatch({"r": {"type": "webhook", "url": hook.url}})

    records = h.deliver(firing())

    assert len(hook.requests) == 1
    assert h.delays == []
    assert [outcome(r) for r in records] == [(False, 1, 400, "HTTP 400: invalid routing key")]


@pytest.mark.parametrize(
    ("status", "retry_after", "waited"),
    [
        pytest.param(429, "7", 7.0, id="429 waits Retry-After"),
        pytest.param(503, "2.5", 2.5, id="503 waits Retry-After"),
        pytest.param(429, "120", 60.0, id="Retry-After is capped at max_backoff"),
        pytest.param(429, "Wed, 21 Oct 2026 07:28:00 GMT", 0.5, id="an HTTP date falls back"),
        pytest.param(500, "7", 0.5, id="500 ignores Retry-After"),
    ],
)
def test_retry_after_is_honoured_on_429_and_503(
    server: Callable[[], Recorder],
    dispatch: Dispatch,
    status: int,
    retry_after: str,
    waited: float,
) -> None:
    hook = server()
    hook.script(Reply(status, {"Retry-After": retry_after}))
    h = dispatch({"r": {"type": "webhook", "url": hook.url}})

    records = h.deliver(firing())

    assert h.delays == [waited]
    assert [outcome(r) for r in records] == [(True, 2, 200, None)]


def test_a_refused_connection_is_retried_then_given_up(dispatch: Dispatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    h = dispatch({"r": {"type": "webhook", "url": url, "attempts": 3}})

    records = h.deliver(firing())

    assert len(h.delays) == 2
    ((ok, attempts, status, error),) = [outcome(r) for r in records]
    assert (ok, attempts, status) == (False, 3, None)
    assert error is not None and error.startswith("ConnectError: ")


# -- isolation and order ------------------------------------------------------------------


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts connections (the kernel does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_receiver_that_hangs_does_not_delay_another(
    server: Callable[[], Recorder], dispatch: Dispatch, blackhole: str
) -> None:
    healthy = server()
    down = {"type": "webhook", "url": blackhole, "timeout": 0.3, "attempts": 3, "backoff": 0.05}
    h = dispatch({"down": down, "healthy": {"type": "webhook", "url": healthy.url}}, sleep=None)

    start = time.monotonic()
    h.dispatcher.submit(firing(), ["down", "healthy"])
    assert healthy.wait_for(1, timeout=FLUSH)
    delivered_after = healthy.requests[0].at - start
    still_trying = [r.receiver for r in h.records if r.receiver == "down"] == []
    assert h.dispatcher.flush(FLUSH)

    assert delivered_after < 0.6  # the hung one needs >= 3 x 0.3 s to give up
    assert still_trying
    assert [r.receiver for r in h.records] == ["healthy", "down"]
    (hung,) = [r for r in h.records if r.receiver == "down"]
    assert (hung.ok, hung.attempts, hung.status) == (False, 3, None)
    assert hung.error is not None and hung.error.startswith("timed out after 0.3 s")
    assert (hung.finished_at - hung.first_attempt_at).total_seconds() >= 0.9


def test_firing_then_resolved_arrive_in_order_even_when_firing_is_retried(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    hook.script(Reply(503))
    h = dispatch({"r": {"type": "webhook", "url": hook.url}})

    records = h.deliver(firing(), resolved())

    assert [r.json()["action"] for r in hook.requests] == ["firing", "firing", "resolved"]
    assert [(r.action, r.attempts, r.ok) for r in records] == [
        ("firing", 2, True),
        ("resolved", 1, True),
    ]


def test_a_full_queue_drops_the_oldest_and_records_it(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    hook.script(Reply(503))
    waiting, release = threading.Event(), threading.Event()

    def sleep(_: float) -> None:
        waiting.set()
        release.wait(FLUSH)

    h = dispatch({"r": {"type": "webhook", "url": hook.url}}, sleep=sleep, queue_size=1)
    h.dispatcher.submit(firing(slo="first"), ["r"])
    assert waiting.wait(FLUSH)  # the worker holds "first", between two attempts
    h.dispatcher.submit(firing(slo="second"), ["r"])
    h.dispatcher.submit(firing(slo="third"), ["r"])
    busy = h.dispatcher.flush(0.05)
    release.set()

    assert not busy
    assert h.dispatcher.flush(FLUSH)
    assert [r.json()["slo"] for r in hook.requests] == ["first", "first", "third"]
    assert [(r.slo, r.ok, r.attempts, r.error) for r in h.records] == [
        ("first", True, 2, None),
        ("second", False, 0, "queue full"),
        ("third", True, 1, None),
    ]


def test_close_abandons_a_retrying_delivery_and_records_what_was_queued(
    server: Callable[[], Recorder], dispatch: Dispatch
) -> None:
    hook = server()
    hook.script(Reply(503))
    config = {"type": "webhook", "url": hook.url, "backoff": 30}
    h = dispatch({"r": config}, sleep=None, rng=lambda: 1)
    h.dispatcher.submit(firing(), ["r"])
    h.dispatcher.submit(resolved(), ["r"])
    assert hook.wait_for(1, FLUSH)  # the firing one failed once: a 30 s backoff follows

    start = time.monotonic()
    h.dispatcher.close()

    assert time.monotonic() - start < 5  # not the 30 s backoff
    first, second = h.records
    assert outcome(first) == (False, 1, 503, "HTTP 503; dispatcher closed")
    assert outcome(second) == (False, 0, None, "dispatcher closed")
    with pytest.raises(RuntimeError, match="closed"):
        h.dispatcher.submit(firing(), ["r"])


def test_a_failing_delivery_log_is_logged_and_delivery_goes_on(
    server: Callable[[], Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    hook = server()

    def on_delivery(record: DeliveryRecord) -> None:
        raise OSError("disk full")

    receivers = parse_receivers({"r": {"type": "webhook", "url": hook.url}})
    with caplog.at_level(logging.ERROR), Dispatcher(receivers, on_delivery) as dispatcher:
        dispatcher.submit(firing(), ["r"])
        dispatcher.submit(resolved(), ["r"])
        assert dispatcher.flush(FLUSH)

    assert len(hook.requests) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "on_delivery failed for the delivery to r"
    ] * 2


def test_an_unexpected_error_fails_one_delivery_not_the_lane(
    server: Callable[[], Recorder], dispatch: Dispatch, caplog: pytest.LogCaptureFixture
) -> None:
    hook = server()
    calls = iter(range(100))

    def clock() -> datetime:
        if next(calls) == 0:
            raise ZeroDivisionError("a bug")
        return T0

    h = dispatch({"r": {"type": "webhook", "url": hook.url}}, clock=clock)

    records = h.deliver(firing(), resolved())

    assert [(r.action, *outcome(r)) for r in records] == [
        ("firing", False, 0, None, "ZeroDivisionError: a bug"),
        ("resolved", True, 1, 200, None),
    ]
    assert "notify r: delivery failed unexpectedly" in caplog.messages


def test_submitting_to_an_unknown_receiver_names_it(dispatch: Dispatch) -> None:
    h = dispatch({"r": {"type": "slack", "url": "http://127.0.0.1:9/x"}})
    with pytest.raises(SpecError, match=r"^alerting: unknown receiver\(s\) pager \(known: r\)$"):
        h.dispatcher.submit(firing(), ["r", "pager"])
    assert h.dispatcher.flush(FLUSH)
    assert h.records == []  # nothing was queued, not even for the known one


# -- config ------------------------------------------------------------------------------


def test_delivery_settings_default_to_5s_5_attempts_1s_backoff_60s_cap() -> None:
    receivers: dict[str, Receiver] = parse_receivers(
        {
            "w": {"type": "webhook", "url": "https://example.com/hook"},
            "p": {"type": "pagerduty", "routing_key": "R0UT1NG"},
        }
    )
    w, p = receivers["w"], receivers["p"]
    assert (w.timeout, w.attempts, w.backoff, w.max_backoff) == (5.0, 5, 1.0, 60.0)
    assert p.type == "pagerduty" and p.url == "https://events.pagerduty.com/v2/enqueue"
    assert "R0UT1NG" not in repr(p)  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        pytest.param(
            {"type": "webhok", "url": "http://x"},
            "type: unknown receiver type 'webhok' — did you mean `webhook`? "
            "(valid: webhook, slack, pagerduty, alertmanager)",
            id="a misspelt type gets a hint",
        ),
        pytest.param(
            {"url": "http://x"},
            "type: required field is missing (one of webhook, slack, pagerduty, alertmanager)",
            id="type is required",
        ),
        pytest.param(
            {"type": "slack", "url": "http://x", "atempts": 3},
            "atempts: unknown field `atempts` — did you mean `attempts`? "
            "(valid: attempts, backoff, max_backoff, timeout, type, url)",
            id="an unknown field gets a hint",
        ),
        pytest.param(
            {"type": "pagerduty"},
            "give `routing_key` or `routing_key_env` (the name of a variable holding it)",
            id="pagerduty needs a routing key",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://x", "secret": "a", "secret_env": "B"},
            "give `secret` or `secret_env`, not both",
            id="a secret comes from one place",
        ),
        pytest.param(
            {"type": "alertmanager", "url": "alertmanager:9093"},
            "url: must be an http:// or https:// URL, got 'alertmanager:9093'",
            id="a URL needs its scheme",
        ),
        pytest.param(
            {"type": "slack", "url": "http://x", "timeout": 0},
            "timeout: must be > 0, got 0",
            id="timeout must be positive",
        ),
        pytest.param(
            {"type": "slack", "url": "http://x", "attempts": 0},
            "attempts: must be >= 1, got 0",
            id="at least one attempt",
        ),
        pytest.param("slack", "must be a mapping with a `type`", id="a receiver is a mapping"),
        pytest.param(
            {"type": "webhook", "url": "http://x", "headers": {"Authorization": "Bearer café"}},
            "headers.Authorization: must be printable ASCII",
            id="a header value is ASCII and is not echoed",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://x", "headers": {"X Team": "a"}},
            "headers.X Team: not a header name: 'X Team'",
            id="a header name is a token",
        ),
        pytest.param(
            {"type": "pagerduty", "routing_key_env": "$PD_KEY"},
            "routing_key_env: must be an environment variable name, got '$PD_KEY'",
            id="an env name is a name, not a reference",
        ),
    ],
)
def test_a_bad_receiver_is_named_in_the_error(config: Any, problem: str) -> None:
    good = {"type": "slack", "url": "https://hooks.slack.example/x"}
    with pytest.raises(SpecError) as info:
        parse_receivers({"chat": good, "ops": config})
    assert info.value.problems == [f'receiver "ops": {problem}']


# -- docs --------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "receivers.md"


@pytest.mark.parametrize(
    "model", [WebhookReceiver, SlackReceiver, PagerDutyReceiver, AlertmanagerReceiver]
)
def test_every_receiver_field_is_in_the_receiver_docs(model: type[BaseModel]) -> None:
    text = DOCS.read_text()
    (kind,) = get_args(model.model_fields["type"].annotation)
    assert f"## `{kind}`" in text
    assert [f for f in model.model_fields if f"| `{f}` |" not in text] == []


def test_the_verify_snippet_in_the_docs_accepts_what_slokit_signs() -> None:
    snippet = DOCS.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    hook = parse_receivers({"h": {"type": "webhook", "url": "http://x", "secret": SECRET}})["h"]
    request = hook.render(firing(), now=datetime.now(UTC), environ={})
    stamp, header = request.headers["X-Slokit-Timestamp"], request.headers["X-Slokit-Signature"]

    assert namespace["verify"](SECRET, stamp, request.body, header)
    assert not namespace["verify"](SECRET, stamp, request.body + b" ", header)
    assert not namespace["verify"](SECRET, str(int(stamp) - 301), request.body, header)
