"""Where alerts go: one config type per receiver `type`, each able to render a
`Notification` into the one HTTP request its service expects.

    webhook       the Notification as JSON, optionally HMAC-signed
    slack         a Block Kit message for an incoming webhook
    pagerduty     an Events API v2 trigger / resolve event
    alertmanager  one alert posted to Alertmanager's /api/v2/alerts

Rendering does no I/O and reads no clock: the caller passes `now` and the environment
(secrets may live in environment variables). `slokit.alerting.notify` sends the
requests, with retries.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import AfterValidator, Field, SecretStr, TypeAdapter, ValidationError, model_validator

from slokit.alerting.notification import Notification
from slokit.errors import SpecError
from slokit.spec.v1 import Strict

SIGNATURE_HEADER = "X-Slokit-Signature"
TIMESTAMP_HEADER = "X-Slokit-Timestamp"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty knows critical, error, warning and info; a page wakes someone, a ticket waits.
PAGERDUTY_SEVERITY = {"page": "critical", "ticket": "warning"}
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus label names


@dataclass(frozen=True)
class Outbound:
    """One HTTP POST, ready to send."""

    url: str
    headers: dict[str, str]
    body: bytes


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
EnvName = Annotated[str, Field(pattern=ENV_NAME)]
# RFC 9110: a header name is a token; values here are visible ASCII (no line breaks).
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
HeaderValue = Annotated[str, Field(pattern=r"^[\x20-\x7e\t]*$")]


class Delivery(Strict):
    """How hard to try, shared by every receiver type. The defaults ride out a
    receiver restart (about 1 + 2 + 4 + 8 s of backoff, jittered) without holding a
    lane for minutes."""

    timeout: float = Field(default=5.0, gt=0)  # seconds, each phase of one attempt
    attempts: int = Field(default=5, ge=1, le=100)
    backoff: float = Field(default=1.0, ge=0)  # seconds, the first retry's delay cap
    max_backoff: float = Field(default=60.0, ge=0)


def _secret(
    value: SecretStr | None, env: str | None, field: str, environ: Mapping[str, str]
) -> str | None:
    """The secret itself, or the value of the environment variable that holds it."""
    if value is not None:
        return value.get_secret_value()
    if env is None:
        return None
    found = environ.get(env)
    if not found:
        raise SpecError(f"{field}_env: environment variable {env} is not set (or is empty)")
    return found


def _one_of(a: object, b: object, field: str, required: bool) -> None:
    if a is not None and b is not None:
        raise ValueError(f"give `{field}` or `{field}_env`, not both")
    if required and a is None and b is None:
        raise ValueError(f"give `{field}` or `{field}_env` (the name of a variable holding it)")


class WebhookReceiver(Delivery):
    """The Notification as JSON. With a secret, signed so the receiver can check who
    sent it and when (see `verify_signature`)."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr | None = None
    secret_env: EnvName | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> WebhookReceiver:
        _one_of(self.secret, self.secret_env, "secret", required=False)
        return self

    def render(self, n: Notification, *, now: datetime, environ: Mapping[str, str]) -> Outbound:
        body = orjson.dumps(n.to_dict())
        ours = {"Content-Type": "application/json"}
        secret = _secret(self.secret, self.secret_env, "secret", environ)
        if secret is not None:
            timestamp = str(int(now.timestamp()))
            ours[TIMESTAMP_HEADER] = timestamp
            ours[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        return Outbound(self.url, _merge_headers(self.headers, ours), body)


class SlackReceiver(Delivery):
    """A Slack incoming webhook (the URL is itself the credential)."""

    type: Literal["slack"]
    url: HttpUrl

    def render(self, n: Notification, *, now: datetime, environ: Mapping[str, str]) -> Outbound:
        return Outbound(self.url, {"Content-Type": "application/json"}, orjson.dumps(slack(n)))


class PagerDutyReceiver(Delivery):
    """PagerDuty Events API v2: one incident per alert key, resolved by the same key."""

    type: Literal["pagerduty"]
    routing_key: SecretStr | None = None
    routing_key_env: EnvName | None = None
    url: HttpUrl = PAGERDUTY_URL

    @model_validator(mode="after")
    def _check(self) -> PagerDutyReceiver:
        _one_of(self.routing_key, self.routing_key_env, "routing_key", required=True)
        return self

    def render(self, n: Notification, *, now: datetime, environ: Mapping[str, str]) -> Outbound:
        key = _secret(self.routing_key, self.routing_key_env, "routing_key", environ)
        assert key is not None  # one of the two is required
        body = orjson.dumps(pagerduty(n, key))
        return Outbound(self.url, {"Content-Type": "application/json"}, body)


class AlertmanagerReceiver(Delivery):
    """A Prometheus Alertmanager, which then groups, silences and routes the alert."""

    type: Literal["alertmanager"]
    url: HttpUrl  # the base URL, e.g. http://alertmanager:9093

    def render(self, n: Notification, *, now: datetime, environ: Mapping[str, str]) -> Outbound:
        url = self.url.rstrip("/") + "/api/v2/alerts"
        return Outbound(url, {"Content-Type": "application/json"}, orjson.dumps([alertmanager(n)]))


Receiver = Annotated[
    WebhookReceiver | SlackReceiver | PagerDutyReceiver | AlertmanagerReceiver,
    Field(discriminator="type"),
]
RECEIVER_TYPES = ("webhook", "slack", "pagerduty", "alertmanager")
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<="}
_RECEIVER: TypeAdapter[Receiver] = TypeAdapter(Receiver)


def parse_receivers(config: Mapping[str, Any]) -> dict[str, Receiver]:
    """Validate `alerting.receivers` (name -> config); every problem of every receiver
    in one SpecError, each naming its receiver."""
    out: dict[str, Receiver] = {}
    problems: list[str] = []
    for name, raw in config.items():
        try:
            out[name] = _RECEIVER.validate_python(raw)
        except ValidationError as exc:
            problems += [f'receiver "{name}": {_word(err)}' for err in exc.errors()]
    if problems:
        head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in alerting receivers"
        raise SpecError(head + "\n  " + "\n  ".join(problems), problems)
    return out


def describe_error(err: Any) -> tuple[tuple[str, ...], str]:
    """(path inside the receiver, message) for one pydantic error of `Receiver`, worded
    for people: pydantic's union tag dropped, hints for misspelt types and fields, and
    no secret or header value echoed back."""
    loc = tuple(str(seg) for seg in err["loc"])
    if loc and loc[0] in RECEIVER_TYPES:
        loc = loc[1:]
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "union_tag_invalid":
        got = str(err["ctx"]["tag"])
        close = difflib.get_close_matches(got, RECEIVER_TYPES, n=1)
        hint = f" — did you mean `{close[0]}`?" if close else ""
        return (
            "type",
        ), f"unknown receiver type {got!r}{hint} (valid: {', '.join(RECEIVER_TYPES)})"
    if kind == "union_tag_not_found":
        return ("type",), f"required field is missing (one of {', '.join(RECEIVER_TYPES)})"
    if kind == "model_attributes_type":
        return (), "must be a mapping with a `type`"
    if kind == "unknown_field":
        loc += (str(err["ctx"]["field"]),)
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "string_pattern_mismatch" and loc[:1] == ("headers",):
        is_name = loc[-1] == "[key]"
        msg = f"not a header name: {err['input']!r}" if is_name else "must be printable ASCII"
        loc = loc[:2]
    elif kind == "string_pattern_mismatch":
        msg = f"must be an environment variable name, got {err['input']!r}"
    elif kind in _BOUNDS:
        op, bound = _BOUNDS[kind], next(iter(err["ctx"].values()))
        msg = f"must be {op} {bound:g}, got {err['input']!r}"
    return loc, msg


def _word(err: Any) -> str:
    loc, msg = describe_error(err)
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def _merge_headers(theirs: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """The configured headers, except where they would replace ours (HTTP header names
    are case-insensitive, so `content-type` must not slip in beside `Content-Type`)."""
    taken = {k.lower() for k in ours}
    return {**{k: v for k, v in theirs.items() if k.lower() not in taken}, **ours}


# -- webhook signatures --------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `timestamp + "." + body`. The timestamp is
    inside the MAC so a captured request cannot be replayed later with a new time."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    header: str,
    *,
    max_age: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether `header` (X-Slokit-Signature) signs `body` sent at `timestamp`
    (X-Slokit-Timestamp) with `secret`. Compared in constant time. With `max_age`
    (seconds), also reject timestamps further than that from `now` (default: the
    clock), which is what makes a replayed request detectable."""
    expected = sign(secret, str(timestamp), body).encode()
    if not hmac.compare_digest(expected, header.strip().encode()):
        return False
    if max_age is None:
        return True
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs((time.time() if now is None else now) - sent) <= max_age


# -- what people read ----------------------------------------------------------------


def _num(x: float, decimals: int = 3) -> str:
    return f"{x:.{decimals}f}".rstrip("0").rstrip(".")


def _percent(x: float | None) -> str:
    return "no data" if x is None else f"{_num(x)}%"


def budget_text(n: Notification) -> str:
    """The budget left as a percentage of the whole budget (negative when overspent)."""
    return "unknown" if n.budget_remaining is None else f"{_num(n.budget_remaining * 100, 1)}%"


def burn_text(n: Notification) -> str:
    """The burn rates of the windows that fired (all known ones when none fired)."""
    names = list(n.windows) if n.windows else list(n.burn_rates)
    rates = [(w, n.burn_rates.get(w)) for w in names]
    text = ", ".join(f"{w} {'n/a' if b is None else _num(b, 1) + 'x'}" for w, b in rates)
    if n.threshold is not None:
        text += f" (threshold {_num(n.threshold, 2)}x)"
    return text or "none"


def group_text(n: Notification) -> str:
    return ", ".join(f"{k}={'(none)' if v is None else v}" for k, v in n.group.items()) or "all"


def title(n: Notification) -> str:
    """`[PAGE] availability (llm-api)`, or `[RESOLVED page] ...` once it is over."""
    tag = f"RESOLVED {n.severity}" if n.action == "resolved" else n.severity.upper()
    return f"[{tag}] {n.slo} ({n.service})"


def description(n: Notification) -> str:
    what = "resolved" if n.action == "resolved" else ("no data" if n.reason == "no_data" else "")
    parts = [what] if what else []
    parts += [
        f"SLI {_percent(n.sli)} vs objective {_percent(n.objective)}",
        f"budget left {budget_text(n)}",
        f"burn rates {burn_text(n)}",
    ]
    if any(v for v in n.group.values()):
        parts.append(f"group {group_text(n)}")
    return "; ".join(parts)


def rfc3339(dt: datetime) -> str:
    """UTC, `Z`-suffixed (naive times are taken as UTC, never as local time)."""
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


# -- Slack -----------------------------------------------------------------------------


def _esc(text: str) -> str:
    """Slack mrkdwn control characters (api.slack.com "Formatting text for app surfaces")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack(n: Notification) -> dict[str, Any]:
    """A Block Kit message: header, summary, a field grid, a button to `link`. `text` is
    the fallback Slack shows in notifications and where blocks cannot render."""
    resolved = n.action == "resolved"
    fields = {
        "Service": n.service,
        "Group": group_text(n),
        "SLI vs objective": f"{_percent(n.sli)} vs {_percent(n.objective)}",
        "Budget left": budget_text(n),
        "Burn rates": burn_text(n),
        "Started": rfc3339(n.started_at),
    }
    if resolved:
        fields["Resolved"] = rfc3339(n.at)
    summary = f"*Resolved.* {n.summary}" if resolved else n.summary
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title(n), 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(summary), 3000)}},
        {
            "type": "section",  # at most 10 fields of at most 2000 characters each
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{k}*\n{_esc(v)}", 2000)}
                for k, v in fields.items()
            ],
        },
    ]
    if n.link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": n.link}
        blocks.append({"type": "actions", "elements": [button]})
    text = f"{title(n)}: {'resolved — ' if resolved else ''}{n.summary}"
    return {"text": _esc(text), "blocks": blocks}


# -- PagerDuty -------------------------------------------------------------------------


def pagerduty(n: Notification, routing_key: str) -> dict[str, Any]:
    """An Events API v2 event. `dedup_key` is the alert key, so the resolve closes the
    incident the trigger opened; a resolve needs nothing else."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if n.action == "resolved" else "trigger",
        "dedup_key": n.key,
    }
    if n.action == "resolved":
        return event
    event["payload"] = {
        "summary": _cut(f"{title(n)}: {n.summary}", 1024),  # PagerDuty's limit
        "source": n.service,
        "severity": PAGERDUTY_SEVERITY.get(n.severity, "info"),
        "timestamp": rfc3339(n.started_at),
        "component": n.slo,
        "class": n.reason,
        "custom_details": {
            "slo": n.slo,
            "group": n.group,
            "objective": n.objective,
            "sli": n.sli,
            "budget_remaining": n.budget_remaining,
            "burn_rates": n.burn_rates,
            "windows": list(n.windows) if n.windows else None,
            "threshold": n.threshold,
            "labels": n.labels,
        },
    }
    event["client"] = "slokit"
    if n.link:
        event["client_url"] = n.link
        event["links"] = [{"href": n.link, "text": f"{n.slo} ({n.service})"}]
    return event


# -- Alertmanager ----------------------------------------------------------------------


def label_name(raw: str) -> str:
    """A valid Prometheus label name: other characters become `_`, and a leading digit
    (or an empty name) gets a `_` in front."""
    if _LABEL_NAME.match(raw):
        return raw
    name = re.sub(r"[^a-zA-Z0-9_]", "_", raw)
    return name if name and not name[0].isdigit() else "_" + name


def alertmanager(n: Notification) -> dict[str, Any]:
    """One postable alert. Its identity is its label set, so the resolved notification
    carries exactly the firing one's labels; `endsAt` in the past resolves it. Ours
    win over the SLO's labels and the group's when names collide."""
    labels = {label_name(k): v for k, v in n.labels.items()}
    labels |= {label_name(k): v for k, v in n.group.items() if v is not None}
    labels |= {
        "alertname": "SLONoData" if n.reason == "no_data" else "SLOBurnRate",
        "service": n.service,
        "slo": n.slo,
        "severity": n.severity,
        "slokit_key": n.key,
    }
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": n.summary, "description": description(n)},
        "startsAt": rfc3339(n.started_at),
    }
    if n.action == "resolved":
        alert["endsAt"] = rfc3339(n.at)
    if n.link:
        alert["generatorURL"] = n.link
    return alert
