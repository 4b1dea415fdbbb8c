"""What a response says about itself: tokens, finish reason, content, and for streams
the arrival time of each content chunk (TTFT, inter-token latency).

A stream is relayed event by event, bytes unchanged: the meter reads each complete
server-sent event as it passes and only ever holds back one thing, the usage chunk the
gateway asked for on the client's behalf (`stream_options.include_usage`) when the
client did not ask for it itself.
"""

from __future__ import annotations

import time
from typing import Any

import orjson


class Usage:
    __slots__ = ("cached_tokens", "estimated", "input_tokens", "output_tokens")

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.estimated = False

    def read(self, usage: Any) -> None:
        """Token counts from an answer's `usage`; a count that is not a whole number in
        [0, 2**53) is ignored (an event column holds int64, and no answer is that long)."""
        if not isinstance(usage, dict):
            return
        p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if _count(p):
            self.input_tokens = p
        if _count(c):
            self.output_tokens = c
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and _count(details.get("cached_tokens")):
            self.cached_tokens = details["cached_tokens"]


def _count(v: Any) -> bool:
    return type(v) is int and 0 <= v < 1 << 53


def _is_tool_call(choice: dict[str, Any]) -> bool:
    """A chunk of a tool call: output the model produced, with no text."""
    delta = choice.get("delta")
    return isinstance(delta, dict) and bool(delta.get("tool_calls"))


def _content_of(choice: dict[str, Any]) -> str | None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        c = delta.get("content")
        if c is None:
            c = delta.get("reasoning_content")
        if c is None and delta.get("tool_calls"):
            return ""  # a tool-call chunk is output, with no text
        return c if isinstance(c, str) else None
    t = choice.get("text")  # /v1/completions
    return t if isinstance(t, str) else None


def _without_null_usage(data: bytes) -> bytes:
    """`data` without the `"usage":null` member that every chunk carries once usage is
    asked for (the gateway asked on the client's behalf: the client did not see it
    before). Quotes inside JSON strings are escaped, so the pattern is only ever a key."""
    if b'"usage":null' not in data:
        return data
    return data.replace(b',"usage":null', b"").replace(b'"usage":null,', b"")


class StreamMeter:
    """Feed it upstream bytes; it returns the bytes to send on and keeps the timings."""

    __slots__ = (
        "_buf",
        "_sep",
        "chunks",
        "done",
        "finish_reason",
        "first_token",
        "hide_usage",
        "itl_max",
        "last_token",
        "parts",
        "usage",
    )

    def __init__(self, hide_usage: bool, keep_text: bool) -> None:
        self.hide_usage = hide_usage
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.first_token: float | None = None  # perf_counter() of the first content chunk
        self.last_token: float | None = None
        self.itl_max = 0.0  # seconds
        self.chunks = 0  # content chunks seen
        self.done = False  # saw `data: [DONE]`
        self.parts: list[str] | None = [] if keep_text else None
        self._buf = b""
        self._sep = b"\n\n"

    def feed(self, data: bytes, now: float | None = None) -> bytes:
        if now is None:
            now = time.perf_counter()
        if not self._buf:
            # the common case, a piece holding one whole single-line `data:` event, read
            # without the splitting below (8.4 -> 4.6 us a chat chunk, orjson 1.7 of
            # them): its only line breaks are the separator, so the loop below would
            # find this one event, and with no `\r` it would keep `\n\n` separators
            if self._sep == b"\n\n":
                end = len(data) - 2
                one = data.find(b"\n") == end and data[-1] == 10 and data.find(b"\r") < 0
            else:
                end = len(data) - 4
                one = data.find(b"\r") == end and data.find(b"\n") == end + 1
                one = one and data[-2:] == b"\r\n"
            if one and data[:5] == b"data:":
                try:
                    obj = orjson.loads(data[5:end])
                except orjson.JSONDecodeError:
                    pass  # `[DONE]`, or not JSON: the general way
                else:
                    if obj.__class__ is not dict or self._read(obj, now):
                        return _without_null_usage(data) if self.hide_usage else data
                    return b""
        buf = self._buf + data if self._buf else data
        if not self._buf and b"\r\n" in data[:512]:
            self._sep = b"\r\n\r\n"
        sep = self._sep
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(sep, start)
            if end < 0:
                break
            stop = end + len(sep)
            if self._event(buf[start:end], now):
                out.append(buf[start:stop])
            start = stop
        self._buf = buf[start:]
        if not out:
            return b""
        sent = out[0] if len(out) == 1 else b"".join(out)
        return _without_null_usage(sent) if self.hide_usage else sent

    def rest(self) -> bytes:
        """Whatever the upstream sent after the last complete event (sent on unchanged)."""
        rest, self._buf = self._buf, b""
        return rest

    def _event(self, event: bytes, now: float) -> bool:
        """Read one event; False to hold it back (a usage chunk the client did not ask for)."""
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and not self._read(obj, now):
                return False
        return True

    def _read(self, obj: dict[str, Any], now: float) -> bool:
        """Read one chunk; False to hold it back."""
        choices = obj.get("choices")
        usage = obj.get("usage")
        if usage:
            self.usage.read(usage)
        if choices:
            self._choices(choices, now)
        elif usage and self.hide_usage:
            return False
        return True

    def _choices(self, choices: Any, now: float) -> None:
        for choice in choices:
            if choice.__class__ is not dict:  # orjson makes plain dicts, lists, strs
                continue
            delta = choice.get("delta")
            content = delta.get("content") if delta.__class__ is dict else choice.get("text")
            if content.__class__ is not str:
                content = _content_of(choice)  # reasoning, a tool call, or none
            if content or (content == "" and _is_tool_call(choice)):
                last = self.last_token
                if last is None:
                    self.first_token = now
                elif now - last > self.itl_max:
                    self.itl_max = now - last
                self.last_token = now
                self.chunks += 1
                if self.parts is not None:
                    self.parts.append(content)
            fr = choice.get("finish_reason")
            if fr and isinstance(fr, str):
                self.finish_reason = fr

    def text(self) -> str | None:
        return None if self.parts is None else "".join(self.parts)


def read_body(body: bytes, usage: Usage) -> tuple[str | None, str | None]:
    """A non-streamed answer: fill `usage`, return (finish_reason, content text)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    usage.read(obj.get("usage"))
    choices = obj.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return None, None
    first = choices[0]
    msg = first.get("message")
    text: str | None = None
    if isinstance(msg, dict):
        c = msg.get("content")
        text = c if isinstance(c, str) else ("" if msg.get("tool_calls") else None)
    elif isinstance(first.get("text"), str):
        text = first["text"]
    fr = first.get("finish_reason")
    return (fr if isinstance(fr, str) else None), text
