"""HTTP/1.1 wire pieces shared by slokit's two httptools servers (the gateway's and
fake-llm's): reason phrases and chunked-body framing."""

from __future__ import annotations

from http import HTTPStatus

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a `transfer-encoding: chunked` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def reason(status: int) -> bytes:
    return REASONS.get(status, b"Unknown")
