"""Error answers in OpenAI's format: `{"error": {"message", "type", "param", "code"}}`,
so OpenAI clients raise their usual exception types (AuthenticationError,
RateLimitError, BadRequestError, InternalServerError, ...)."""

from __future__ import annotations

import orjson

from slokit.gateway.http import head

JSON = (b"content-type", b"application/json")

# status -> OpenAI error type
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, "server_error"),
                "param": None,
                "code": code,
            }
        }
    )


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    keep_alive: bool = True,
) -> bytes:
    body = error_body(status, message, code)
    return head(status, [JSON, *(headers or [])], len(body), keep_alive) + body


def retry_after(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", b"%d" % max(1, int(seconds + 0.999)))
