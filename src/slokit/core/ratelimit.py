"""Per-tenant rate limits in requests and tokens per minute, as OpenAI states them, with
the numbers its `x-ratelimit-*` headers carry. Pure: `now` (seconds, monotonic) is
passed in.

Each tenant and dimension is one GCRA cell (the Generic Cell Rate Algorithm, ITU-T
I.371; Brandur Leach, "Rate limiting, cells, and GCRA"), which behaves as a token
bucket of `limit` units refilled at `limit` per minute, kept in one float: the
theoretical arrival time `tat`, when the bucket would be full again. With the emission
interval `T = 60 / limit`:

    tat'      = max(tat, now) + cost * T
    allowed   when tat' - now <= 60          (the whole minute's burst fits)
    remaining = floor((60 - (tat' - now)) / T)
    reset     = tat' - now                    (until the bucket is full again)
    retry     = tat' - now - 60               (when refused: until the cost fits)

A request is allowed only if every dimension allows it, and only then is it charged.
Its token cost is an estimate (prompt plus `max_tokens`); `settle` charges or refunds
the difference once the response tells the real usage. A request estimated above the
whole per-minute token limit is refused with `too_large` (OpenAI: "Request too
large"): waiting will not help.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

_WINDOW = 60.0
# Float slack: 7 requests of 60/7 s each add up to 60.00000000000001 s, and the 7th of
# a 7/min burst must still pass. A microsecond; a thousandth of a unit when counting.
_SLACK_S = 1e-6
_EPS = 1e-3


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_min: int | None = None
    tokens_per_min: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_min", "tokens_per_min"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"rate limit: {name} must be > 0, got {v}")


class Decision:
    """The verdict on one request and what the response headers say. A dimension
    without a limit has `limit_* = None`, `remaining_* = 0` and `reset_*_s = 0.0`."""

    __slots__ = (
        "allowed",
        "limit_requests",
        "limit_tokens",
        "remaining_requests",
        "remaining_tokens",
        "reset_requests_s",
        "reset_tokens_s",
        "retry_after_s",
        "too_large",
    )

    def __init__(
        self,
        allowed: bool,
        retry_after_s: float,
        limit_requests: int | None,
        remaining_requests: int,
        reset_requests_s: float,
        limit_tokens: int | None,
        remaining_tokens: int,
        reset_tokens_s: float,
        too_large: bool = False,
    ) -> None:
        self.allowed = allowed
        self.retry_after_s = retry_after_s
        self.limit_requests = limit_requests
        self.remaining_requests = remaining_requests
        self.reset_requests_s = reset_requests_s
        self.limit_tokens = limit_tokens
        self.remaining_tokens = remaining_tokens
        self.reset_tokens_s = reset_tokens_s
        self.too_large = too_large

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Decision({fields})"


class _Cells:
    """One tenant's two GCRA cells (a request limit of 0 means none)."""

    __slots__ = ("rpm", "t_req", "t_tok", "tat_req", "tat_tok", "tpm")

    def __init__(self, limits: Limits) -> None:
        self.rpm = limits.requests_per_min
        self.tpm = limits.tokens_per_min
        self.t_req = _WINDOW / self.rpm if self.rpm else 0.0
        self.t_tok = _WINDOW / self.tpm if self.tpm else 0.0
        self.tat_req = -math.inf
        self.tat_tok = -math.inf


class RateLimiter:
    """Limits per tenant: `tenants[name]`, else `default`, else none (`check` answers
    None). State is kept per tenant seen; a tenant's cells are made on first sight."""

    def __init__(
        self, default: Limits | None = None, tenants: Mapping[str, Limits] | None = None
    ) -> None:
        self.default = default
        self.tenants = dict(tenants or {})
        self._cells: dict[str, _Cells | None] = {}  # None: a tenant without limits

    def _cells_of(self, tenant: str) -> _Cells | None:
        limits = self.tenants.get(tenant, self.default)
        cells = None
        if limits is not None and (limits.requests_per_min or limits.tokens_per_min):
            cells = _Cells(limits)
        self._cells[tenant] = cells
        return cells

    def check(self, tenant: str, now: float, est_tokens: int = 0) -> Decision | None:
        """Charge one request estimated at `est_tokens` to `tenant` if both limits allow
        it. None when the tenant has no limits."""
        try:
            c = self._cells[tenant]
        except KeyError:
            c = self._cells_of(tenant)
        if c is None:
            return None
        wait = new_req = new_tok = 0.0
        too_large = False
        if c.rpm:
            new_req = (c.tat_req if c.tat_req > now else now) + c.t_req
            over = new_req - now - _WINDOW
            if over > _SLACK_S:
                wait = over
        if c.tpm:
            new_tok = (c.tat_tok if c.tat_tok > now else now) + est_tokens * c.t_tok
            over = new_tok - now - _WINDOW
            if over > _SLACK_S:
                if est_tokens > c.tpm:
                    too_large = True
                    over = c.tat_tok - now if c.tat_tok > now else 0.0
                if over > wait:
                    wait = over
        allowed = wait == 0.0 and not too_large
        if allowed:
            if c.rpm:
                c.tat_req = new_req
            if c.tpm:
                c.tat_tok = new_tok
        if c.rpm:
            busy = c.tat_req - now if c.tat_req > now else 0.0
            rem_req = int((_WINDOW - busy) / c.t_req + _EPS)
        else:
            busy, rem_req = 0.0, 0
        if c.tpm:
            busy_tok = c.tat_tok - now if c.tat_tok > now else 0.0
            rem_tok = int((_WINDOW - busy_tok) / c.t_tok + _EPS)
        else:
            busy_tok, rem_tok = 0.0, 0
        return Decision(
            allowed,
            wait,
            c.rpm,
            rem_req if rem_req > 0 else 0,
            busy,
            c.tpm,
            rem_tok if rem_tok > 0 else 0,
            busy_tok,
            too_large,
        )

    def settle(self, tenant: str, now: float, delta_tokens: int) -> None:
        """Correct the token charge once the real usage is known: `delta_tokens` is
        actual minus estimated (negative refunds). A refund never fills the bucket
        beyond full; a charge may leave it in debt, which later requests wait out."""
        c = self._cells.get(tenant)
        if c is None or not c.tpm or not delta_tokens:
            return
        # from `now` at the earliest; a `tat` left in the past means a full bucket,
        # since `check` starts from max(tat, now)
        c.tat_tok = (c.tat_tok if c.tat_tok > now else now) + delta_tokens * c.t_tok
