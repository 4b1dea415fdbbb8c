"""Response bodies shaped exactly like OpenAI's, as bytes.

Non-streaming bodies are dicts serialised with orjson; stream chunks are spliced from
per-request byte templates, since a stream writes one chunk per token. Field order and
presence follow OpenAI's API reference (chat completion, chat completion chunk, legacy
completion, embeddings, models, errors), including `"usage": null` on every chunk of a
stream that asked for `stream_options.include_usage` and the final usage chunk with
empty `choices`.
"""

from __future__ import annotations

import base64
from array import array
from typing import Any

import orjson

FINGERPRINT = "fp_fakellm"
MODEL_CREATED = 1_700_000_000
DONE = b"data: [DONE]\n\n"

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
ERROR_MESSAGES = {
    429: "Rate limit reached for requests (fake-llm fault). Please try again in {retry}s.",
    500: "The server had an error while processing your request. Sorry about that! "
    "(fake-llm fault)",
    502: "Bad gateway. (fake-llm fault)",
    503: "The engine is currently overloaded, please try again later. (fake-llm fault)",
}


def error(message: str, status: int, param: str | None = None, code: str | None = None) -> bytes:
    kind, default_code = ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return orjson.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}
    )


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# the chat completion body as a template: the benchmarked path, ~3x cheaper than
# serialising the same dict (tests compare it with `usage()` and the client's parser)
_CHAT = (
    b'{"id":"%s","object":"chat.completion","created":%d,"model":%s,"choices":[{"index":0,'
    b'"message":{"role":"assistant","content":%s,"refusal":null,"annotations":[]},'
    b'"logprobs":null,"finish_reason":"%s"}],"usage":{"prompt_tokens":%d,'
    b'"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0,'
    b'"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
    b'"service_tier":"default","system_fingerprint":"' + FINGERPRINT.encode() + b'"}'
)


def chat_completion(
    rid: str, created: int, model: str, content: str, finish: str, prompt: int, completion: int
) -> bytes:
    return _CHAT % (
        rid.encode(),
        created,
        orjson.dumps(model),
        orjson.dumps(content),
        finish.encode(),
        prompt,
        completion,
        prompt + completion,
    )


def text_completion(
    rid: str, created: int, model: str, text: str, finish: str, prompt: int, completion: int
) -> bytes:
    return orjson.dumps(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


class ChunkWriter:
    """The `data: {...}\\n\\n` events of one stream (chat or legacy completion)."""

    __slots__ = ("chat", "head", "tail")

    def __init__(self, chat: bool, rid: str, created: int, model: str, include_usage: bool):
        self.chat = chat
        obj = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": rid, "object": obj, "created": created, "model": model}
        self.head = b"data: " + orjson.dumps(head)[:-1]
        if chat:
            self.head += b',"service_tier":"default"'
        self.head += b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
        self.tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"

    def first(self, text: str) -> bytes:
        """The role chunk (chat only) followed by the first token's chunk."""
        if not self.chat:
            return self.token(text)
        role = b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        role += b'"logprobs":null,"finish_reason":null}'
        out = self.head + role + self.tail
        return out + self.token(text) if text else out

    def token(self, text: str) -> bytes:
        t = orjson.dumps(text)
        if self.chat:
            choice = (
                b'{"index":0,"delta":{"content":' + t + b'},"logprobs":null,"finish_reason":null}'
            )
        else:
            choice = b'{"text":' + t + b',"index":0,"logprobs":null,"finish_reason":null}'
        return self.head + choice + self.tail

    def finish(self, reason: str) -> bytes:
        r = reason.encode()
        if self.chat:
            choice = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"' + r + b'"}'
        else:
            choice = b'{"text":"","index":0,"logprobs":null,"finish_reason":"' + r + b'"}'
        return self.head + choice + self.tail

    def usage(self, prompt: int, completion: int) -> bytes:
        if self.chat:
            u = usage(prompt, completion)
        else:
            u = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return self.head + b'],"usage":' + orjson.dumps(u) + b"}\n\n"


def embeddings(
    model: str, vectors: list[list[float]], prompt: int, encoding: str = "float"
) -> bytes:
    data: list[dict[str, Any]] = []
    for i, vec in enumerate(vectors):
        value: Any = vec
        if encoding == "base64":
            value = base64.b64encode(array("f", vec).tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    )


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "fake-llm"}


def models(names: tuple[str, ...]) -> bytes:
    return orjson.dumps({"object": "list", "data": [model_object(n) for n in names]})
