"""A bare TCP relay for bench/stream_cpu_floor.py: each client connection piped to its own
upstream connection, bytes passed on unread (uvloop), optionally burning `--burn-us`
microseconds of CPU on every piece that comes back from the upstream.

It stands for the least a relay in Python can do on the stream path (a read and a write
per piece), and, with the burn, for a relay that does more work per piece: the benchmark
measures how much TTFT such relays add on this machine as a function of the CPU they use.
Not a proxy to use: no HTTP, no limits, no timeouts.

    .venv/bin/python bench/l4_relay.py UPSTREAM_HOST UPSTREAM_PORT PORT [--burn-us N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client, burn_s: float) -> None:
        self.client = client
        self.burn_s = burn_s
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.burn_s:
            end = time.perf_counter() + self.burn_s
            while time.perf_counter() < end:  # busy: the CPU cost being measured
                continue
        self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int, burn_s: float) -> None:
        self.host, self.port, self.burn_s = host, port, burn_s
        self.transport: Any = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(
            lambda: _Upstream(self, self.burn_s), self.host, self.port
        )
        for data in self.early:
            up.transport.write(data)
        self.early.clear()
        self.upstream = up

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.transport.close()


async def _serve(host: str, port: int, listen: int, burn_s: float) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Client(host, port, burn_s), "127.0.0.1", listen)
    await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("upstream_host")
    ap.add_argument("upstream_port", type=int)
    ap.add_argument("port", type=int)
    ap.add_argument("--burn-us", type=float, default=0.0, help="CPU burnt per upstream piece")
    args = ap.parse_args()
    import uvloop

    uvloop.run(_serve(args.upstream_host, args.upstream_port, args.port, args.burn_us / 1e6))


if __name__ == "__main__":
    main()
