"""An alert policy file for `slokit alerts replay --policy`: the `alerting` block of an
SLO (rows, `min_events`, `no_data`, `for`) applied to every SLO of a spec, with
optional per-SLO blocks under `slos:`, so a team can try a policy before adopting it.

    policy:
      - {severity: page, long: 1h, short: 5m, burn: 10}
    min_events: 50
    slos:
      chat-latency: {policy: none}
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from slokit.errors import SpecError
from slokit.spec import model, v1
from slokit.spec.load import _slo_alerting, parse_yaml


class PolicyFile(v1.SLOAlerting):
    slos: dict[str, v1.SLOAlerting] = Field(default_factory=dict)


def with_policy(spec: model.Spec, path: str | Path) -> model.Spec:
    """`spec` with its SLOs' alert policies replaced by those of the file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the policy file ({exc.strerror})") from None
    data: Any
    data, _ = parse_yaml(text, str(p))
    try:
        parsed = PolicyFile.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{p}: {problems}") from None
    names = {s.name for s in spec.slos}
    unknown = sorted(set(parsed.slos) - names)
    if unknown:
        raise SpecError(
            f"{p}: slos: unknown SLO(s) {', '.join(unknown)}; the spec has {sorted(names)}"
        )
    defaults = v1.Alerting()
    base = v1.SLOAlerting.model_validate(parsed.model_dump(by_alias=True, exclude={"slos"}))
    slos = tuple(
        replace(s, alerting=_slo_alerting(parsed.slos.get(s.name, base), defaults))
        for s in spec.slos
    )
    return replace(spec, slos=slos)
