"""`slokit demo`: generate traffic into a fresh store, write the demo spec, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from slokit.demo.traffic import Incident, generate, plan
from slokit.engine import Evaluator, Status
from slokit.spec import load
from slokit.store import DuckDBStore


@dataclass(frozen=True)
class DemoResult:
    db: str
    spec: str
    requests: int
    scores: int
    incidents: tuple[Incident, ...]
    statuses: list[Status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "spec": self.spec,
            "requests": self.requests,
            "scores": self.scores,
            "incidents": [
                {
                    "kind": i.kind,
                    "start": i.start.isoformat(),
                    "end": i.end.isoformat(),
                    "description": i.description,
                    "labels": i.labels,
                }
                for i in self.incidents
            ],
            "statuses": [s.to_dict(timeline=False) for s in self.statuses],
        }


def demo_spec_text() -> str:
    return resources.files("slokit.demo").joinpath("spec.yaml").read_text()


def run_demo(
    db: str | Path,
    spec_out: str | Path,
    *,
    end: datetime,
    days: int = 30,
    rate: float = 60.0,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Generate `days` of traffic ending at `end` into `db` (which should be new),
    write the demo spec to `spec_out`, and evaluate it at `end`."""
    Path(spec_out).write_text(demo_spec_text())
    spec = load(spec_out)
    the_plan = plan(end, days=days, seed=seed)
    requests = scores = 0
    with DuckDBStore(db) as store:
        evaluator = Evaluator(spec, store)  # registers rollups: kept current on ingest
        for day, (reqs, scs) in enumerate(
            generate(the_plan, rate_per_minute=rate, seed=seed), start=1
        ):
            requests += store.append("request", reqs).inserted
            scores += store.append("score", scs).inserted
            if progress is not None:
                progress(day)
        store.append("annotation", the_plan.annotations)
        statuses = evaluator.evaluate(end)
    return DemoResult(str(db), str(spec_out), requests, scores, the_plan.incidents, statuses)
