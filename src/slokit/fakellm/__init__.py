"""`slokit fake-llm`: a realistic fake OpenAI-compatible upstream, for tests, the demo
and benchmarks (docs/fake-llm.md).

    from slokit.fakellm import FakeLLMConfig, config_from_dict, running_fake_llm

    with running_fake_llm(config_from_dict({"ttft_ms": 0, "itl_ms": 0})) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x")

Timings follow configurable distributions and slow down past a capacity like a batching
engine; faults come by probability or are forced per request with `x-fake-*` headers;
`GET /fake/stats` shows what the fake received.
"""

from slokit.fakellm.config import (
    FakeLLMConfig,
    FaultConfig,
    config_from_dict,
    load_config,
    loads_config,
    with_overrides,
)
from slokit.fakellm.distributions import Distribution
from slokit.fakellm.jobs import HEADERS
from slokit.fakellm.runner import running_fake_llm, serve
from slokit.fakellm.server import FakeLLM

__all__ = [
    "HEADERS",
    "Distribution",
    "FakeLLM",
    "FakeLLMConfig",
    "FaultConfig",
    "config_from_dict",
    "load_config",
    "loads_config",
    "running_fake_llm",
    "serve",
    "with_overrides",
]
