"""From a request to a `Job`: what to answer, how long to take, which fault to play.

The body is read the way OpenAI reads it (`messages`, `prompt`, `input`, `max_tokens`,
`max_completion_tokens`, `stream`, `stream_options.include_usage`, `response_format`,
`dimensions`, `encoding_format`); the `x-fake-*` headers override the configured
distributions and fault rates for one request, so a test can ask for exactly what it
checks. Unknown fields are ignored, as a lenient server would.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from slokit.fakellm import content
from slokit.fakellm.config import FakeLLMConfig, fault_kind

H_FAULT = b"x-fake-fault"
H_OUTPUT_TOKENS = b"x-fake-output-tokens"
H_TTFT = b"x-fake-ttft-ms"
H_ITL = b"x-fake-itl-ms"
H_DISCONNECT_AFTER = b"x-fake-disconnect-after"
H_SLOW_FIRST_BYTE = b"x-fake-slow-first-byte-ms"
H_CONTENT = b"x-fake-content"
HEADERS = (H_FAULT, H_OUTPUT_TOKENS, H_TTFT, H_ITL, H_DISCONNECT_AFTER, H_SLOW_FIRST_BYTE)


class BadRequest(Exception):
    """Answered with OpenAI's error body (`status`, `param`, `code`)."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code


@dataclass(slots=True)
class Job:
    kind: str  # "chat", "text" or "embed"
    model: str
    fault: str | None = None
    stream: bool = False
    include_usage: bool = False
    prompt_tokens: int = 0
    tokens: int = 0  # completion tokens
    json_mode: bool = False
    pieces: list[str] | None = None  # one per content chunk, made for streams only
    text: str = ""  # the whole content
    finish: str = "stop"
    ttft: float | None = None  # seconds, forced by a header (else sampled, scaled)
    itl: float | None = None
    slow: float = 0.0  # seconds the response head is held (`slow_first_byte`)
    disconnect_after: int = 0  # content chunks before a `disconnect` drops
    inputs: tuple[str, ...] = ()  # embeddings
    dimensions: int = 0
    encoding: str = "float"


def _number(fake: dict[bytes, bytes], name: bytes, integer: bool = False) -> float | None:
    raw = fake.get(name)
    if raw is None:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise BadRequest(400, f"{name.decode()}: {raw.decode('latin-1')!r} is not {kind}") from None
    if value < 0:
        raise BadRequest(400, f"{name.decode()}: must be >= 0, got {value}")
    return value


class Planner:
    """Makes jobs with the server's config, seeded random source and vocabulary."""

    def __init__(self, config: FakeLLMConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.vocab = content.Vocabulary(config.seed, config.content)
        self.models = frozenset(config.models)
        self.reject_unknown = config.reject_unknown_models
        self.chars_per_token = config.chars_per_token
        d = config.output_tokens
        self.fixed_tokens = round(d.sample(rng)) if d.kind == "constant" else None
        self.fault_table = [(k, r) for k, r in config.faults.rates.items() if r > 0]

    def fault(self, fake: dict[bytes, bytes]) -> str | None:
        forced = fake.get(H_FAULT)
        if forced is not None:
            try:
                return fault_kind(forced.decode("latin-1"))
            except ValueError as exc:
                raise BadRequest(400, f"x-fake-fault: {exc}") from None
        if not self.fault_table:
            return None
        r = self.rng.random()
        for kind, rate in self.fault_table:
            if r < rate:
                return kind
            r -= rate
        return None

    def _common(self, kind: str, body: Any, fake: dict[bytes, bytes]) -> Job:
        if type(body) is not dict:
            raise BadRequest(400, "the request body must be a JSON object")
        model = body.get("model")
        if type(model) is not str or not model:
            raise BadRequest(400, "you must provide a model parameter", "model")
        if self.reject_unknown and model not in self.models:
            raise BadRequest(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "model",
                "model_not_found",
            )
        if not fake:  # the common case: nothing forced
            return Job(kind, model, self.fault(fake) if self.fault_table else None)
        job = Job(kind, model, self.fault(fake))
        ttft = _number(fake, H_TTFT)
        job.ttft = None if ttft is None else ttft / 1000
        itl = _number(fake, H_ITL)
        job.itl = None if itl is None else itl / 1000
        slow = _number(fake, H_SLOW_FIRST_BYTE)
        if job.fault == "slow_first_byte":
            job.slow = (self.config.faults.slow_first_byte_ms if slow is None else slow) / 1000
        after = _number(fake, H_DISCONNECT_AFTER, integer=True)
        if job.fault == "disconnect":
            job.disconnect_after = int(
                self.config.faults.disconnect_after if after is None else after
            )
        return job

    def generation(self, kind: str, body: Any, fake: dict[bytes, bytes]) -> Job:
        """A chat (`kind="chat"`) or legacy text completion (`kind="text"`)."""
        job = self._common(kind, body, fake)
        if kind == "chat":
            messages = body.get("messages")
            if type(messages) is not list or not messages:
                raise BadRequest(
                    400,
                    "Missing required parameter: 'messages'.",
                    "messages",
                    "missing_required_parameter",
                )
            chars = content.messages_chars(messages)
            limit = body.get("max_completion_tokens")
            if limit is None:
                limit = body.get("max_tokens")
            fmt = body.get("response_format")
            json_mode = type(fmt) is dict and fmt.get("type") in ("json_object", "json_schema")
            job.prompt_tokens = math.ceil(chars / self.chars_per_token) if chars else 0
        else:
            prompt = body.get("prompt")
            if prompt is None:
                raise BadRequest(
                    400,
                    "Missing required parameter: 'prompt'.",
                    "prompt",
                    "missing_required_parameter",
                )
            limit = body.get("max_tokens")
            json_mode = False
            ids = content.token_ids(prompt)
            job.prompt_tokens = (
                ids
                if ids is not None
                else content.estimate_tokens(content.text_chars(prompt), self.chars_per_token)
            )
        if limit is not None and type(limit) is not int:
            raise BadRequest(400, f"max_tokens must be an integer, got {limit!r}", "max_tokens")
        if body.get("stream") is True:
            job.stream = True
            options = body.get("stream_options")
            job.include_usage = type(options) is dict and options.get("include_usage") is True
        literal = fake.get(H_CONTENT) if fake else None
        if literal is not None:
            job.text = literal.decode("utf-8", "replace")
            job.pieces = content.split_literal(job.text)
            job.tokens = len(job.pieces)
            return job
        forced = _number(fake, H_OUTPUT_TOKENS, integer=True) if fake else None
        if forced is not None:
            n = int(forced)
        elif self.fixed_tokens is not None:
            n = self.fixed_tokens
        else:
            n = round(self.config.output_tokens.sample(self.rng))
        if limit is not None and n > limit:
            n = max(limit, 0)
            job.finish = "length"
        job.tokens = n
        job.json_mode = json_mode
        job.text = self.vocab.text(n, json_mode)
        return job

    def pieces(self, job: Job) -> list[str]:
        """The content chunks of a stream (made only for streams: one per token)."""
        if job.pieces is None:
            job.pieces = self.vocab.pieces(job.tokens, job.json_mode)
        return job.pieces

    def embedding(self, body: Any, fake: dict[bytes, bytes]) -> Job:
        job = self._common("embed", body, fake)
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            raise BadRequest(
                400, "Missing required parameter: 'input'.", "input", "missing_required_parameter"
            )
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        if not isinstance(raw, list):
            raise BadRequest(400, "'input' must be a string or a list", "input")
        job.inputs = tuple(x if isinstance(x, str) else ",".join(map(str, x)) for x in raw)
        ids = sum(len(x) for x in raw if isinstance(x, list))
        chars = sum(len(x) for x in raw if isinstance(x, str))
        job.prompt_tokens = ids + content.estimate_tokens(chars, self.config.chars_per_token)
        dims = body.get("dimensions", self.config.embedding_dimensions)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 8192:
            raise BadRequest(400, f"dimensions must be an integer in 1..8192, got {dims!r}")
        job.dimensions = dims
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest(400, f"encoding_format must be float or base64, got {encoding!r}")
        job.encoding = encoding
        return job
