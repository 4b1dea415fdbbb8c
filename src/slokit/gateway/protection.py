"""Budget-aware protection: while a tier's error budget burns faster than its rule
allows, tiers below it give up capacity (admission caps them to `yield_share` of the
limit) until the burn rate falls back under the threshold.

The statuses come from the engine: in `slokit serve --gateway` straight from the
server's evaluator, in a remote or multi-worker gateway from `GET /v1/status` of the
`slokit serve` that owns the store. A status counts for a rule when its SLO is the
rule's and its group either has no `tier` label or has the rule's tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slokit.gateway.config import ProtectionV1

log = logging.getLogger("slokit.gateway")

Fetch = Callable[[str], Awaitable[list[dict[str, Any]]]]


def burning(rule: ProtectionV1, statuses: list[dict[str, Any]]) -> bool:
    """True when any matching status burns above the rule's threshold."""
    for s in statuses:
        if s.get("slo") != rule.slo:
            continue
        tier = (s.get("group") or {}).get("tier")
        if tier is not None and tier != rule.tier:
            continue
        burn = (s.get("burn_rates") or {}).get(rule.window)
        if isinstance(burn, (int, float)) and burn > rule.burn_rate_above:
            return True
    return False


class Protector:
    def __init__(
        self,
        rules: tuple[ProtectionV1, ...],
        fetch: Fetch,
        apply: Callable[[str, bool], None],
    ) -> None:
        self.rules = rules
        self.fetch = fetch
        self.apply = apply
        self.state: dict[str, bool] = {r.tier: False for r in rules}
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> dict[str, bool]:
        wanted: dict[str, bool] = dict.fromkeys(self.state, False)
        for rule in self.rules:
            try:
                statuses = await self.fetch(rule.slo)
            except Exception as exc:  # keep the last decision when the engine is away
                log.warning("protection: cannot read the status of %s: %s", rule.slo, exc)
                wanted[rule.tier] = self.state[rule.tier]
                continue
            wanted[rule.tier] = wanted[rule.tier] or burning(rule, statuses)
        for tier, on in wanted.items():
            if on != self.state[tier]:
                log.warning("protection: tier %s %s", tier, "protected" if on else "released")
            self.state[tier] = on
            self.apply(tier, on)
        return dict(self.state)

    def start(self) -> None:
        if self.rules:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        interval = min(r.interval_s for r in self.rules)
        while True:
            await self.check_once()
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def http_fetch(session: Any, url: str, token: str | None) -> Fetch:
    """Statuses from `GET {url}/v1/status?slo=NAME&timeline=false`."""
    headers = {"authorization": f"Bearer {token}"} if token else {}

    async def fetch(slo: str) -> list[dict[str, Any]]:
        async with session.get(
            url.rstrip("/") + "/v1/status",
            params={"slo": slo, "timeline": "false"},
            headers=headers,
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{url}/v1/status answered {resp.status}")
            data = await resp.json()
        statuses: list[dict[str, Any]] = data.get("statuses", [])
        return statuses

    return fetch


def evaluator_fetch(server: Any) -> Fetch:
    """Statuses from the evaluator of the `slokit serve` this gateway runs inside."""
    from datetime import UTC, datetime

    async def fetch(slo: str) -> list[dict[str, Any]]:
        async with server._eval_lock:
            statuses = await asyncio.to_thread(server.evaluator.evaluate, datetime.now(UTC), slo)
        return [s.to_dict(timeline=False) for s in statuses]

    return fetch
