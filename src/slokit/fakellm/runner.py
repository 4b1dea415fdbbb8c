"""Running a `FakeLLM`: in a background thread for tests, or in the foreground for the CLI.

Both use uvloop when it is installed (it is a dependency on Linux and macOS).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from slokit.fakellm.config import FakeLLMConfig
from slokit.fakellm.server import FakeLLM


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextlib.contextmanager
def running_fake_llm(
    config: FakeLLMConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run a fake on its own event loop in a daemon thread; yield its base URL
    (`http://127.0.0.1:PORT`, no `/v1`). Port 0 picks a free port."""
    fake = FakeLLM(config)
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        url = asyncio.run_coroutine_threadsafe(fake.start(host, port), loop).result(10)
        try:
            yield url
        finally:
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def serve(
    config: FakeLLMConfig,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM; `ready(url)` is called once it listens."""

    async def main() -> None:
        fake = FakeLLM(config)
        url = await fake.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready(url)
        try:
            await stop.wait()
        finally:
            await fake.stop()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
