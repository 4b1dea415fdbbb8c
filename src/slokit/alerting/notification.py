"""What an alert tells a receiver: one firing or resolved alert, receiver-neutral.
Each notifier (`slokit.alerting.notify`) renders it in its own format."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Action = Literal["firing", "resolved"]


def alert_key(service: str, slo: str, group: dict[str, str | None], severity: str) -> str:
    """Stable identity of an alert: the same SLO, group and severity always give the
    same key (PagerDuty's dedup_key, Alertmanager's label set)."""
    groups = json.dumps(group, sort_keys=True, separators=(",", ":"))
    raw = f"{service}\x1f{slo}\x1f{groups}\x1f{severity}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Notification:
    action: Action
    key: str  # alert_key(...)
    service: str
    slo: str
    group: dict[str, str | None]
    severity: str  # page | ticket (or a custom severity of the spec)
    reason: str  # "burn" | "no_data"
    summary: str  # one line for humans
    started_at: datetime  # when the alert began firing
    at: datetime  # when this notification was decided (the resolve time for "resolved")
    objective: float  # percent
    sli: float | None  # percent, over the SLO window
    budget_remaining: float | None  # fraction of the error budget left (negative: overspent)
    burn_rates: dict[str, float | None] = field(default_factory=dict)  # "1h": 15.2, ...
    windows: tuple[str, str] | None = None  # (long, short) of the row that fired
    threshold: float | None = None  # the burn-rate threshold of that row
    link: str | None = None  # where a human looks next (the spec's alerting.link)
    labels: dict[str, str] = field(default_factory=dict)  # the SLO's labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "key": self.key,
            "service": self.service,
            "slo": self.slo,
            "group": self.group,
            "severity": self.severity,
            "reason": self.reason,
            "summary": self.summary,
            "started_at": self.started_at.isoformat(),
            "at": self.at.isoformat(),
            "objective": self.objective,
            "sli": self.sli,
            "budget_remaining": self.budget_remaining,
            "burn_rates": self.burn_rates,
            "windows": list(self.windows) if self.windows else None,
            "threshold": self.threshold,
            "link": self.link,
            "labels": self.labels,
        }
