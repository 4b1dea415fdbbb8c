"""`slokit fake-llm`: an OpenAI-compatible fake upstream that the official `openai`
client parses, with seeded content, configured timings that stretch past a capacity,
faults by rate or forced per request, and a stats endpoint showing what it received."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from slokit.errors import SpecError
from slokit.fakellm import (
    HEADERS,
    Distribution,
    FakeLLM,
    FakeLLMConfig,
    config_from_dict,
    loads_config,
    running_fake_llm,
    with_overrides,
)
from slokit.fakellm.jobs import H_CONTENT

DOCS = Path(__file__).resolve().parent.parent / "docs" / "fake-llm.md"
PROMPT = "Say hello to the fake upstream."  # 31 characters: 8 prompt tokens at ~4 chars each
MESSAGES: Any = [{"role": "user", "content": PROMPT}]
NUMBERED_5 = "tok1 tok2 tok3 tok4 tok5"


def good(**changes: Any) -> FakeLLMConfig:
    """The known-good config every case starts from: no delays, 5 numbered tokens."""
    data: dict[str, Any] = {"ttft_ms": 0, "itl_ms": 0, "output_tokens": 5, "content": "numbered"}
    data.update(changes)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_fake_llm(good()) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0, timeout=5) as c:
        yield c


def stats(url: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{url}/fake/stats").json()
    return result


def wait_for(url: str, key: str, value: int, seconds: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        s = stats(url)
        if s[key] >= value or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


# -- OpenAI shapes through the official client ------------------------------------------


def test_a_chat_completion_parses_with_content_usage_and_stop(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.id.startswith("chatcmpl-")
    assert [(c.index, c.message.role, c.message.content, c.finish_reason) for c in r.choices] == [
        (0, "assistant", NUMBERED_5, "stop")
    ]
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (8, 5, 13)


@pytest.mark.parametrize(
    ("extra", "headers", "content", "finish", "tokens"),
    [
        pytest.param({"max_tokens": 3}, {}, "tok1 tok2 tok3", "length", 3, id="max_tokens caps"),
        pytest.param(
            {"max_completion_tokens": 2}, {}, "tok1 tok2", "length", 2, id="max_completion_tokens"
        ),
        pytest.param({"max_tokens": 50}, {}, NUMBERED_5, "stop", 5, id="a high cap is not hit"),
        pytest.param(
            {}, {"x-fake-output-tokens": "7"}, NUMBERED_5 + " tok6 tok7", "stop", 7, id="forced"
        ),
        pytest.param(
            {"max_tokens": 4},
            {"x-fake-output-tokens": "9"},
            "tok1 tok2 tok3 tok4",
            "length",
            4,
            id="forced length still capped",
        ),
        pytest.param({}, {"x-fake-output-tokens": "0"}, "", "stop", 0, id="zero tokens"),
    ],
)
def test_output_length_follows_the_cap_and_the_header(
    client: openai.OpenAI,
    extra: dict[str, Any],
    headers: dict[str, str],
    content: str,
    finish: str,
    tokens: int,
) -> None:
    r = client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers, **extra)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == (content, finish)
    assert r.usage is not None and r.usage.completion_tokens == tokens


def test_a_stream_sends_one_token_per_chunk_and_no_usage_unless_asked(
    client: openai.OpenAI,
) -> None:
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert deltas == ["tok1", " tok2", " tok3", " tok4", " tok5"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_include_usage_adds_a_final_usage_chunk_with_empty_choices(client: openai.OpenAI) -> None:
    with client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, 5)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_the_raw_stream_is_sse_ending_with_done(url: str) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        text = r.read().decode()
        assert r.headers["content-type"].startswith("text/event-stream")
    events = text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert len(events) == 1 + 5 + 1 + 2  # role, 5 tokens, finish, [DONE] and the end


def test_the_async_client_streams_and_completes(url: str) -> None:
    async def main() -> tuple[str, str | None]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="t", max_retries=0) as c:
            whole = await c.chat.completions.create(model="m", messages=MESSAGES)
            stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
            return "".join(parts), whole.choices[0].message.content

    assert asyncio.run(main()) == (NUMBERED_5, NUMBERED_5)


def test_legacy_completions_stream_and_complete(client: openai.OpenAI) -> None:
    r = client.completions.create(model="m", prompt="abcdefgh", max_tokens=2)
    assert (r.object, r.choices[0].text, r.choices[0].finish_reason) == (
        "text_completion",
        "tok1 tok2",
        "length",
    )
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 2)
    with client.completions.create(
        model="m", prompt="x", stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == NUMBERED_5
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_embeddings_are_unit_vectors_fixed_by_the_text(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])
    vectors = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert len(vectors[0]) == 256
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[1]), 1.0, rel_tol=1e-5)
    small = client.embeddings.create(model="e", input="a", dimensions=8, encoding_format="float")
    assert len(small.data[0].embedding) == 8


def test_models_are_listed_and_retrievable(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == list(FakeLLMConfig().models)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_json_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert json.loads(r.choices[0].message.content or "") == {"text": NUMBERED_5}
    with client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}, stream=True
    ) as stream:
        parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert json.loads("".join(parts)) == {"text": NUMBERED_5}
    assert len([p for p in parts if p]) == 5


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("I'm sorry, but I can't help with that.", id="a refusal"),
        pytest.param("", id="empty"),
        pytest.param('{"answer": 4', id="invalid JSON"),
    ],
)
def test_x_fake_content_forces_the_exact_content(client: openai.OpenAI, literal: str) -> None:
    headers = {H_CONTENT.decode(): literal}
    r = client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)
    assert r.choices[0].message.content == literal
    with client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers=headers, stream=True
    ) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == literal


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        pytest.param(b"{not json", 400, None, id="malformed JSON"),
        pytest.param(b'{"messages": []}', 400, "model", id="no model"),
        pytest.param(b'{"model": "m"}', 400, "messages", id="no messages"),
        pytest.param(
            b'{"model": "m", "messages": [{}], "max_tokens": "x"}', 400, "max_tokens", id="bad cap"
        ),
    ],
)
def test_bad_requests_get_openai_error_bodies(
    url: str, body: bytes, status: int, param: str | None
) -> None:
    r = httpx.post(f"{url}/v1/chat/completions", content=body)
    assert r.status_code == status
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.json()["error"]["param"] == param


def test_an_unknown_path_is_a_404_with_an_openai_error(url: str) -> None:
    r = httpx.post(f"{url}/v1/nothing", json={})
    assert (r.status_code, r.json()["error"]["message"]) == (404, "Invalid URL (POST /v1/nothing)")
    assert httpx.get(f"{url}/v1/chat/completions").status_code == 405


# -- timings and load -------------------------------------------------------------------


def test_ttft_and_inter_token_delays_follow_the_config() -> None:
    config = good(ttft_ms=150, itl_ms=20)
    with (
        running_fake_llm(config) as base,
        openai.OpenAI(base_url=f"{base}/v1", api_key="t", max_retries=0) as c,
    ):
        # the client's first stream costs it about 100 ms of its own (imports, models):
        # spend that untimed, so the chunks' arrival times are the fake's delays
        with c.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            for _ in stream:
                pass
        t0 = time.perf_counter()
        arrivals = []
        with c.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c.chat.completions.create(model="m", messages=MESSAGES)
        whole = time.perf_counter() - t0
    assert 0.14 <= arrivals[0] < 0.35  # 150 ms
    assert 0.075 <= arrivals[-1] - arrivals[0] < 0.3  # 4 gaps of 20 ms
    assert 0.22 <= whole < 0.5  # 150 + 4 * 20 ms


def test_headers_force_ttft_and_slow_first_byte(client: openai.OpenAI) -> None:
    t0 = time.perf_counter()
    client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-fake-ttft-ms": "120"}
    )
    forced = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = client.chat.completions.with_raw_response.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-fault": "slow_first_byte", "x-fake-slow-first-byte-ms": "150"},
    )
    first_byte = time.perf_counter() - t0
    r.parse().close()
    assert 0.11 <= forced < 0.3
    assert 0.14 <= first_byte < 0.35


def _wall(base: str, n: int) -> float:
    async def main() -> float:
        async with openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="t", max_retries=0) as c:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(c.chat.completions.create(model="m", messages=MESSAGES) for _ in range(n))
            )
            return time.perf_counter() - t0

    return asyncio.run(main())


def test_latency_grows_past_capacity_like_a_batching_engine() -> None:
    # alone: 50 ms prefill + 10 decode steps of 10 ms = 150 ms; 8 running on capacity 2:
    # each delay stretched up to 4x
    config = good(ttft_ms=50, itl_ms=10, output_tokens=11, capacity=2)
    with running_fake_llm(config) as base:
        at_capacity = _wall(base, 2)
        over = _wall(base, 8)
    assert 0.14 <= at_capacity < 0.3
    assert over > 2 * at_capacity


def test_max_concurrency_rejects_with_503_or_queues() -> None:
    body = {"model": "m", "messages": MESSAGES}

    def two_at_once(base: str) -> list[int]:
        async def main() -> list[int]:
            async with httpx.AsyncClient(base_url=base) as c:
                first = asyncio.ensure_future(c.post("/v1/chat/completions", json=body))
                await asyncio.sleep(0.05)
                second = await c.post("/v1/chat/completions", json=body)
                return [(await first).status_code, second.status_code]

        return asyncio.run(main())

    with running_fake_llm(good(ttft_ms=150, max_concurrency=1)) as base:
        assert two_at_once(base) == [200, 503]
        assert stats(base)["rejected"] == 1
    with running_fake_llm(good(ttft_ms=150, max_concurrency=1, overload="queue")) as base:
        t0 = time.perf_counter()
        assert two_at_once(base) == [200, 200]
        assert time.perf_counter() - t0 >= 0.29  # the second waited for the first


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param("500", openai.InternalServerError, id="500"),
        pytest.param("503", openai.InternalServerError, id="503"),
        pytest.param("429", openai.RateLimitError, id="429"),
        pytest.param("400", openai.BadRequestError, id="any status code"),
        pytest.param("timeout", openai.APITimeoutError, id="timeout never answers"),
        pytest.param("slow_first_byte", openai.APITimeoutError, id="slow first byte"),
        pytest.param("reset", openai.APIConnectionError, id="reset closes the connection"),
        pytest.param("disconnect", openai.APIConnectionError, id="disconnect drops the body"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_fault_header_makes_the_client_raise(
    url: str, fault: str, error: type[Exception], stream: bool
) -> None:
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="t", max_retries=0, timeout=0.3) as c,
        pytest.raises(error),
    ):
        r = c.chat.completions.create(
            model="m", messages=MESSAGES, stream=stream, extra_headers={"x-fake-fault": fault}
        )
        if stream:
            with r:  # type: ignore[union-attr]
                list(r)  # type: ignore[arg-type]


def test_a_429_carries_retry_after_and_an_openai_error_body(url: str) -> None:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"x-fake-fault": "429"},
    )
    assert r.status_code == 429
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("1", "1000")
    assert r.json()["error"]["type"] == "requests"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_disconnect_streams_k_chunks_then_drops_without_done(url: str) -> None:
    before = stats(url)["dropped"]
    headers = {"x-fake-fault": "disconnect", "x-fake-disconnect-after": "2"}
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    lines = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        lines.extend(line for line in r.iter_lines() if line)
    contents = [json.loads(x[6:])["choices"][0]["delta"].get("content") for x in lines]
    assert contents == ["", "tok1", " tok2"]  # the role chunk, then 2 content chunks
    s = stats(url)
    assert s["dropped"] == before + 1
    assert s["last"][-1]["outcome"] == "dropped"


def test_an_unknown_fault_header_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown fault 'boom'"):
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-fake-fault": "boom"}
        )


def test_fault_rates_are_drawn_from_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        config = good(seed=seed, faults={"rates": {"503": 0.3, "429": 0.2}})
        with running_fake_llm(config) as base, httpx.Client(base_url=base) as c:
            body = {"model": "m", "messages": MESSAGES}
            return [c.post("/v1/chat/completions", json=body).status_code for _ in range(40)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 429, 503}
    assert first != statuses(8)


# -- stats --------------------------------------------------------------------------------


def test_a_client_leaving_mid_stream_is_counted_cancelled() -> None:
    with running_fake_llm(good(itl_ms=50, output_tokens=40)) as base:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if "tok2" in line:
                    break
        s = wait_for(base, "cancelled", 1)
        assert (s["cancelled"], s["completed"], s["in_flight"]) == (1, 0, 0)
        assert s["last"][-1]["outcome"] == "cancelled"


def test_a_client_giving_up_on_a_timeout_fault_is_counted_cancelled() -> None:
    with running_fake_llm(good()) as base:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "m", "messages": MESSAGES},
                headers={"x-fake-fault": "timeout"},
                timeout=0.2,
            )
        s = wait_for(base, "cancelled", 1)
        assert (s["cancelled"], s["faults"]) == (1, {"timeout": 1})


def test_stats_show_the_last_requests_exactly_as_received_and_reset_clears_them() -> None:
    raw = b'{"model":"m",  "messages":[{"role":"user","content":"caf\xc3\xa9"}]}\n'
    with running_fake_llm(good(history=2)) as base, httpx.Client(base_url=base) as c:
        c.get("/v1/models")
        c.post(
            "/v1/chat/completions",
            content=raw,
            headers={"X-Tenant-Id": "acme", "content-type": "application/json"},
        )
        s = stats(base)
        assert (s["requests"], s["completed"], s["in_flight"]) == (2, 2, 0)
        assert s["paths"] == {"/v1/chat/completions": 1, "/v1/models": 1}
        assert s["statuses"] == {"200": 2}
        last = s["last"][-1]
        assert (last["method"], last["path"], last["status"]) == (
            "POST",
            "/v1/chat/completions",
            200,
        )
        assert ["X-Tenant-Id", "acme"] in last["headers"]
        assert base64.b64decode(last["body_base64"]) == raw
        assert last["body"] == raw.decode()
        assert c.post("/fake/reset").json() == {"reset": True}
        after = stats(base)
        assert (after["requests"], after["last"]) == (0, [])


def test_pipelined_requests_are_answered_in_order() -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    one = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with running_fake_llm(good()) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(one + one.replace(b"Host: x", b"Host: x\r\nConnection: close"))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert re.findall(rb'"id":"chatcmpl-fake(\d+)"', data) == [b"1", b"2"]


# -- config, determinism, API, CLI ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "ttft_ms: 5\ncapcity: 3\n",
            "fake.yaml:2: capcity: unknown field `capcity` — did you mean `capacity`? (valid: "
            "apiVersion, api_version, capacity, chars_per_token, content, embedding_dimensions, "
            "faults, history, host, itl_ms, kind, max_concurrency, models, output_tokens, "
            "overload, port, reject_unknown_models, seed, ttft_ms)",
            id="a misspelt field",
        ),
        pytest.param(
            "itl_ms: lognormal:20\n",
            "fake.yaml:1: itl_ms: 'lognormal:20' is not a distribution; use a number, "
            "`lognormal:MEDIAN:P99` or `uniform:LOW:HIGH`",
            id="a bad shorthand",
        ),
        pytest.param(
            "ttft_ms:\n  kind: lognormal\n  median: 100\n",
            "fake.yaml:1: ttft_ms: a lognormal takes its median and exactly one of p99 or sigma",
            id="a lognormal without its spread",
        ),
        pytest.param(
            "faults:\n  rates: {boom: 0.1}\n",
            "fake.yaml:2: faults.rates: unknown fault 'boom': use a status code 400-599, "
            "or timeout, reset, disconnect, slow_first_byte",
            id="an unknown fault",
        ),
        pytest.param(
            "faults:\n  rates:\n    500: 0.7\n    timeout: 0.6\n",
            "fake.yaml:2: faults.rates: the rates add up to 1.3, more than 1",
            id="rates above one",
        ),
        pytest.param(
            "capacity: 0\n",
            "fake.yaml:1: capacity: Input should be greater than or equal to 1",
            id="no capacity",
        ),
    ],
)
def test_a_bad_config_names_the_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        loads_config(text, "fake.yaml")
    assert caught.value.problems == [message]


def test_a_config_file_sets_distributions_and_faults() -> None:
    config = loads_config(
        "kind: fake-llm\nttft_ms: lognormal:150:600\n"
        "itl_ms: {kind: uniform, low: 10, high: 30}\noutput_tokens: 12\n"
        "faults:\n  rates: {503: 0.01, timeout: 0.001}\n  retry_after_s: 2\n",
        "f.yaml",
    )
    assert config.ttft_ms.describe() == "lognormal median 150 p99 600"
    assert config.itl_ms.describe() == "uniform 10..30"
    assert config.output_tokens.describe() == "12"
    assert dict(config.faults.rates) == {"503": 0.01, "timeout": 0.001}
    assert config.faults.retry_after_s == 2


def test_command_line_fault_rates_merge_with_the_files_and_are_checked() -> None:
    config = loads_config("faults:\n  rates: {503: 0.1}\n  retry_after_s: 3\n", "f.yaml")
    merged = with_overrides(config, {"faults": {"rates": {"429": 0.2}}, "capacity": 4})
    assert dict(merged.faults.rates) == {"503": 0.1, "429": 0.2}
    assert (merged.faults.retry_after_s, merged.capacity) == (3, 4)
    with pytest.raises(SpecError) as caught:
        with_overrides(config, {"faults": {"rates": {"500": 0.95}}})
    assert caught.value.problems == [
        "command line: faults.rates: the rates add up to 1.05, more than 1"
    ]


def test_a_lognormal_has_the_median_and_p99_it_was_given() -> None:
    d = Distribution.parse("lognormal:150:600")
    rng = random.Random(0)
    draws = sorted(d.sample(rng) for _ in range(20_000))
    assert draws[10_000] == pytest.approx(150, rel=0.05)
    assert draws[19_800] == pytest.approx(600, rel=0.1)
    assert Distribution.lognormal(100, sigma=0.5, max=120).sample(random.Random(3)) <= 120


def _contents(config: FakeLLMConfig, n: int = 3) -> list[str]:
    with running_fake_llm(config) as base, httpx.Client(base_url=base) as c:
        body = {"model": "m", "messages": MESSAGES}
        return [
            c.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
            for _ in range(n)
        ]


def test_content_and_lengths_are_fixed_by_the_seed() -> None:
    lorem = {"content": "lorem", "output_tokens": "uniform:3:30"}
    first = _contents(good(seed=1, **lorem))
    assert first == _contents(good(seed=1, **lorem))
    assert first != _contents(good(seed=2, **lorem))
    assert len({len(c.split()) for c in first}) > 1  # lengths drawn, not fixed


def test_fake_llm_runs_on_a_callers_event_loop() -> None:
    async def main() -> int:
        async with FakeLLM(good()) as fake:
            async with httpx.AsyncClient(base_url=fake.url) as c:
                r = await c.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
            assert fake.stats.completed == 1
            return r.status_code

    assert asyncio.run(main()) == 200


def test_the_cli_serves_until_sigterm() -> None:
    cmd = [sys.executable, "-m", "slokit.cli", "fake-llm", "--port", "0", "--ttft-ms", "0"]
    cmd += ["--itl-ms", "0", "--output-tokens", "3", "--content", "numbered"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        match = re.fullmatch(r"fake-llm listening on (http://127\.0\.0\.1:\d+)\n", line[0])
        assert match, line
        r = httpx.post(f"{match[1]}/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert r.json()["choices"][0]["message"]["content"] == "tok1 tok2 tok3"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0, stderr


def test_the_cli_reports_a_bad_option_with_its_field() -> None:
    import typer
    from typer.testing import CliRunner

    from slokit import cli_fakellm

    app = typer.Typer()
    app.callback()(lambda: None)
    cli_fakellm.register(app)
    result = CliRunner().invoke(app, ["fake-llm", "--ttft-ms", "soon"])
    assert result.exit_code == 2
    assert "command line: ttft_ms: 'soon' is not a distribution" in result.output


def test_the_docs_name_every_option_field_header_and_route() -> None:
    import typer.main

    from slokit import cli_fakellm
    from slokit.fakellm.config import DistributionV1, FakeLLMV1, FaultsV1

    text = DOCS.read_text()
    app = typer.Typer()
    app.callback()(lambda: None)
    cli_fakellm.register(app)
    command: Any = typer.main.get_command(app)
    options = [o for p in command.commands["fake-llm"].params for o in p.opts if o != "--help"]
    fields = [*FakeLLMV1.model_fields, *(f"faults.{f}" for f in FaultsV1.model_fields)]
    names = [n for n in [*fields, *DistributionV1.model_fields] if n != "api_version"]
    routes = ["GET /v1/models", "POST /v1/chat/completions", "POST /v1/completions"]
    routes += ["POST /v1/embeddings", "GET /fake/stats", "POST /fake/reset", "GET /health"]
    words = [*options, *names, *(h.decode() for h in (*HEADERS, H_CONTENT)), *routes]
    assert [w for w in words if f"`{w}" not in text] == []
