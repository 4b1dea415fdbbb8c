"""The release gate: the service's error-budget policy applied to its statuses and
firing alerts. `ok` ships, `caution` ships with a warning, `frozen` holds every change
the policy does not allow while frozen (by default: anything but reliability fixes
and security changes).

The default policy is the SRE workbook's example error-budget policy: when the
budget over the window is spent, freeze changes other than reliability and security
fixes until the SLO is met again; a single incident that spends more than 20% of the
window's budget requires a postmortem."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slokit.alerting.engine import Alert
from slokit.core.windows import from_minute
from slokit.engine.status import Status
from slokit.spec.model import Spec

CHANGES = ("feature", "fix", "security")


@dataclass(frozen=True)
class Reason:
    slo: str
    group: dict[str, str | None]
    kind: str  # budget_exhausted | budget_low | page_firing
    message: str
    budget_remaining: float | None = None
    since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "group": self.group,
            "kind": self.kind,
            "message": self.message,
            "budget_remaining": self.budget_remaining,
            "since": None if self.since is None else self.since.isoformat(),
        }


@dataclass(frozen=True)
class Decision:
    service: str
    change: str
    at: datetime
    state: str  # ok | caution | frozen
    ship: bool
    reasons: list[Reason] = field(default_factory=list)
    postmortems: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.ship else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "change": self.change,
            "at": self.at.isoformat(),
            "state": self.state,
            "decision": "ship" if self.ship else "hold",
            "reasons": [r.to_dict() for r in self.reasons],
            "postmortems_required": self.postmortems,
            "budgets": self.budgets,
        }


def _name(st: Status | Alert) -> str:
    group = ",".join(f"{k}={v}" for k, v in sorted(st.group.items()))
    return st.slo + (f"{{{group}}}" if group else "")


def _exhausted_since(st: Status) -> datetime | None:
    """Start of the current run of timeline points with no budget left."""
    since = None
    for ts, remaining in reversed(st.timeline):
        if remaining > 0:
            break
        since = ts
    return since


def decide(
    spec: Spec, statuses: list[Status], firing: list[Alert], change: str, at: datetime
) -> Decision:
    if change not in CHANGES:
        raise ValueError(f"unknown change kind {change!r}; use one of {', '.join(CHANGES)}")
    policy = spec.policy
    gated = set(policy.slos) or {s.name for s in spec.slos}
    frozen = caution = False
    reasons: list[Reason] = []
    budgets = []
    for st in statuses:
        if st.slo not in gated or st.no_data:
            continue
        left = st.error_budget.remaining
        budgets.append({"slo": st.slo, "group": st.group, "budget_remaining": left})
        if policy.freeze_when_exhausted and left <= 0:
            frozen = True
            since = _exhausted_since(st)
            when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
            reasons.append(
                Reason(
                    st.slo,
                    st.group,
                    "budget_exhausted",
                    f"{_name(st)}: error budget spent ({left * 100:.1f}% left{when}; "
                    f"SLI {st.sli:.3f}% vs objective {st.objective}%)",
                    left,
                    since,
                )
            )
        elif left < policy.caution_below:
            caution = True
            reasons.append(
                Reason(
                    st.slo,
                    st.group,
                    "budget_low",
                    f"{_name(st)}: {left * 100:.1f}% of the error budget left "
                    f"(caution below {policy.caution_below * 100:g}%)",
                    left,
                )
            )
    if policy.caution_on_page:
        for a in firing:
            if a.slo in gated and a.severity == "page":
                caution = True
                reasons.append(
                    Reason(
                        a.slo,
                        a.group,
                        "page_firing",
                        f"{_name(a)}: a page is firing since {a.state.fired_at:%Y-%m-%d %H:%M} UTC",
                        since=a.state.fired_at,
                    )
                )
    state = "frozen" if frozen else "caution" if caution else "ok"
    ship = state != "frozen" or change in policy.allow_when_frozen
    postmortems = _postmortems([st for st in statuses if st.slo in gated])
    return Decision(spec.service, change, at, state, ship, reasons, postmortems, budgets)


def _postmortems(statuses: list[Status]) -> list[dict[str, Any]]:
    """Annotations whose interval spent more than the policy's share of some SLO's
    budget, one entry per annotation with every SLO it hit, worst first."""
    by_note: dict[tuple[int, str, str | None], list[dict[str, Any]]] = {}
    for st in statuses:
        for c in st.annotations:
            if c.postmortem:
                key = (c.marker.minute, c.marker.kind, c.marker.text)
                by_note.setdefault(key, []).append(
                    {"slo": st.slo, "group": st.group, "budget_spent": c.spent}
                )
    out = []
    for (minute, kind, text), hits in sorted(by_note.items()):
        hits.sort(key=lambda h: -(h["budget_spent"] or 0))
        out.append(
            {
                "ts": from_minute(minute).isoformat(),
                "kind": kind,
                "text": text,
                "budget_spent": hits[0]["budget_spent"],
                "slo": hits[0]["slo"],
                "slos": hits,
            }
        )
    return out
