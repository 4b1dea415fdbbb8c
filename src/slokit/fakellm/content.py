"""What the fake says: deterministic tokens, prompt token estimates, embedding vectors.

A completion of n tokens is the first n tokens of one sequence fixed by the seed (`lorem`:
words drawn from a small vocabulary; `numbered`: `tok1 tok2 ...`, the same for every
seed). Token i > 0 carries its leading space, so the streamed deltas join into the
content. In JSON mode the same words are wrapped as `{"text": "w1 w2 ..."}`, still n
pieces, and the result always parses.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from array import array
from typing import Any

SEQUENCE = 1024  # tokens before the sequence repeats
_VOCABULARY = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure "
    "in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
    "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est "
    "laborum model token latency budget window burn rate service level objective"
)
_WORDS = _VOCABULARY.split()
_PIECES = re.compile(r"\s*\S+|\s+")


class Vocabulary:
    """The token sequence for one seed, with cached joins (most requests ask for the same n)."""

    def __init__(self, seed: int, style: str = "lorem") -> None:
        if style == "numbered":
            words = [f"tok{i + 1}" for i in range(SEQUENCE)]
        else:
            rng = random.Random(seed)
            words = [rng.choice(_WORDS) for _ in range(SEQUENCE)]
        self.tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
        self._joined: dict[int, str] = {}

    def pieces(self, n: int, json_mode: bool = False) -> list[str]:
        reps = -(-n // SEQUENCE)
        out = (self.tokens * reps)[:n] if reps > 1 else self.tokens[:n]
        if n > SEQUENCE:  # the repeat's first word needs its space
            out = [t if i == 0 or t[0] == " " else " " + t for i, t in enumerate(out)]
        if json_mode and out:
            out = list(out)
            out[0] = '{"text": "' + out[0]
            out[-1] += '"}'
        return out

    def text(self, n: int, json_mode: bool = False) -> str:
        if json_mode:
            return "".join(self.pieces(n, json_mode=True))
        text = self._joined.get(n)
        if text is None:
            text = "".join(self.pieces(n))
            if len(self._joined) < 4096:
                self._joined[n] = text
        return text


def split_literal(text: str) -> list[str]:
    """Forced content split into word tokens that join back into exactly `text`."""
    return _PIECES.findall(text)


def text_chars(value: Any) -> int:
    """Characters of text in a prompt, message content or list of either (token id lists
    count one "character" per id, scaled back by the caller)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += len(item)
            elif isinstance(item, dict):
                part = item.get("text")
                if isinstance(part, str):
                    total += len(part)
            elif isinstance(item, list):
                total += text_chars(item)
        return total
    return 0


def messages_chars(messages: list[Any]) -> int:
    total = 0
    for m in messages:
        if isinstance(m, dict):
            total += text_chars(m.get("content"))
    return total


def estimate_tokens(chars: int, chars_per_token: float) -> int:
    """~chars/4, rounded up, deterministic (OpenAI's rule of thumb for English text)."""
    return math.ceil(chars / chars_per_token) if chars > 0 else 0


def token_ids(value: Any) -> int | None:
    """The number of token ids when a prompt is given as ids (a list of ints)."""
    if isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return len(value)
    return None


def embedding(text: str, seed: int, dimensions: int) -> list[float]:
    """A unit vector fixed by (seed, text)."""
    raw = hashlib.shake_256(f"{seed}\0{text}".encode()).digest(2 * dimensions)
    values = array("h", raw)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
