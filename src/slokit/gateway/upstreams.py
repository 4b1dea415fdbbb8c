"""The upstream pool: which upstreams serve a model, which are healthy, and the model
list `GET /v1/models` answers with (the union of the healthy upstreams' lists).

Each upstream is probed every `health_check.interval_s` (GET `health_check.path`); it
is marked down after `unhealthy_after` consecutive failures and up again on the first
success. A request's own connection failure marks nothing: the retry handles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from slokit.gateway.config import HealthCheckV1, Upstream

log = logging.getLogger("slokit.gateway")


class UpstreamPool:
    def __init__(
        self,
        upstreams: tuple[Upstream, ...],
        check: HealthCheckV1,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.by_name = {u.name: u for u in upstreams}
        self.check = check
        self.on_change = on_change
        self.healthy = {u.name: True for u in upstreams}
        self.failures = {u.name: 0 for u in upstreams}
        self.models: dict[str, list[dict[str, Any]]] = {u.name: [] for u in upstreams}
        self._task: asyncio.Task[None] | None = None
        self._cache: dict[str | None, tuple[str, ...]] = {}

    def for_model(self, model: str | None) -> tuple[str, ...]:
        """Names of the upstreams configured for `model`, healthy ones first."""
        hit = self._cache.get(model)
        if hit is None:
            hit = tuple(u.name for u in self.upstreams if u.serves(model))
            if len(self._cache) < 10_000:
                self._cache[model] = hit
        return hit

    def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(session))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def probe_all(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._probe(session, u) for u in self.upstreams))

    async def _run(self, session: aiohttp.ClientSession) -> None:
        while True:  # the first probe ran at start
            await asyncio.sleep(self.check.interval_s)
            await self.probe_all(session)

    async def _probe(self, session: aiohttp.ClientSession, u: Upstream) -> None:
        headers = {"authorization": f"Bearer {u.api_key}"} if u.api_key else {}
        ok = False
        try:
            async with session.get(
                u.url + self.check.path,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.check.timeout_s),
            ) as resp:
                body = await resp.read()
                ok = resp.status < 500
                if ok and self.check.path.endswith("/models"):
                    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                        data = orjson.loads(body).get("data")
                        if isinstance(data, list):
                            self.models[u.name] = [m for m in data if isinstance(m, dict)]
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        self._record(u.name, ok)

    def _record(self, name: str, ok: bool) -> None:
        was = self.healthy[name]
        if ok:
            self.failures[name] = 0
            now = True
        else:
            self.failures[name] += 1
            now = was and self.failures[name] < self.check.unhealthy_after
        if now != was:
            self.healthy[name] = now
            log.warning("upstream %s is %s", name, "up" if now else "down")
            if self.on_change is not None:
                self.on_change(name, now)

    def model_list(self) -> dict[str, Any]:
        seen: dict[str, dict[str, Any]] = {}
        for u in self.upstreams:
            if not self.healthy[u.name]:
                continue
            for m in self.models[u.name]:
                mid = m.get("id")
                if isinstance(mid, str):
                    seen.setdefault(mid, m)
            for name in u.models:
                if name != "*":
                    seen.setdefault(
                        name, {"id": name, "object": "model", "created": 0, "owned_by": u.name}
                    )
        return {"object": "list", "data": list(seen.values())}
