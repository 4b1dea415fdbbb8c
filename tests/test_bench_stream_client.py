"""The benchmarks' lean streaming client (bench/stream_client.py) measures what it says:
its TTFT figures back the README's short-stream rows, so they are checked here against
fake-llm told exactly when to send its first token."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Any

import orjson

from slokit.fakellm import FakeLLM
from slokit.fakellm.config import config_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from stream_client import run_streams

BODY = {
    "model": "llama-3.1-8b",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "max_tokens": 4,
}


def _run(ttft_ms: float, headers: dict[str, str], streams: int = 4) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        config = config_from_dict({"ttft_ms": ttft_ms, "itl_ms": 5, "output_tokens": 4})
        async with FakeLLM(config) as fake:
            cfg = {
                "url": f"{fake.url}/v1/chat/completions",
                "headers": headers,
                "body": orjson.dumps(BODY).decode(),
                "streams": streams,
                "warmup": 0.0,
                "duration": 0.6,
                "timeout": 5.0,
            }
            return await run_streams(cfg)

    return asyncio.run(main())


def test_ttft_is_the_first_content_not_the_head_or_the_role_chunk() -> None:
    out = _run(80, {})
    rows = out["rows"]
    assert out["errors"] == {}
    # 4 keep-alive streams over 0.6 s of answers taking about 95 ms each
    assert len(rows) >= 12
    assert {r[3] for r in rows} == {200}
    ttfts = [r[1] * 1000 for r in rows]
    totals = [r[2] * 1000 for r in rows]
    # fake-llm sends its head and role chunk at once, the first content after 80 ms
    assert min(ttfts) >= 80
    assert max(ttfts) < 80 + 60
    # then 3 more tokens 5 ms apart: the total ends after the TTFT
    assert all(total >= ttft + 10 for ttft, total in zip(ttfts, totals, strict=True))


def test_an_error_answer_is_a_row_with_its_status_and_no_ttft() -> None:
    out = _run(0, {"x-fake-fault": "503"}, streams=2)
    rows = out["rows"]
    assert rows
    assert {r[3] for r in rows} == {503}
    assert all(math.isnan(r[1]) and math.isnan(r[2]) for r in rows)
    assert out["errors"] == {}


def test_a_stream_cut_mid_answer_is_counted_as_an_error() -> None:
    out = _run(0, {"x-fake-fault": "disconnect", "x-fake-disconnect-after": "1"}, streams=2)
    assert not [r for r in out["rows"] if r[3] == 200]
    assert sum(out["errors"].values()) >= 2
