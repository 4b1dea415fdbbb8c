"""`FakeLLM`: the OpenAI-compatible fake upstream (docs/fake-llm.md).

Routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`,
`POST /v1/completions`, `POST /v1/embeddings`, `GET /health`, `GET /fake/stats`,
`POST /fake/reset`.

Load model, as in a batching engine: with `capacity` C and n requests running, every
delay is stretched by max(1, n / C), n read when the delay starts (before the first
token and before each following one when streaming; before the prefill and before the
decode phase otherwise). Delays forced by `x-fake-*` headers are used as given.

A request with nothing to wait for (zero delays, no fault that holds it) is answered
inside the parser callback, with no task: the zero-delay mode benchmarks rely on.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import orjson

from slokit.fakellm import content, shapes
from slokit.fakellm.config import FakeLLMConfig
from slokit.fakellm.http import SSE, Connection, Request, head
from slokit.fakellm.jobs import BadRequest, Job, Planner
from slokit.fakellm.stats import Record, Stats
from slokit.httpwire import LAST_CHUNK, chunk

Handler = Callable[[Connection, Request], "Coroutine[Any, Any, None] | None"]
DROP = None  # in a stream plan: cut the connection here


class FakeLLM:
    """The fake server. `await start(host, port)` binds and returns its base URL;
    `await stop()` closes it. `stats` holds what it saw (`GET /fake/stats`)."""

    def __init__(
        self,
        config: FakeLLMConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or FakeLLMConfig()
        self.clock = clock
        self.rng = rng or random.Random(self.config.seed)
        self.planner = Planner(self.config, self.rng)
        self.stats = Stats(self.config.history)
        self.url = ""
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seq = 0
        c = self.config
        self._ttft_zero = c.ttft_ms.is_zero
        self._itl_zero = c.itl_ms.is_zero
        self._models_body = shapes.models(c.models)
        self._routes: dict[tuple[bytes, bytes], Handler] = {
            (b"POST", b"/v1/chat/completions"): self._chat,
            (b"POST", b"/v1/completions"): self._text,
            (b"POST", b"/v1/embeddings"): self._embeddings,
            (b"GET", b"/v1/models"): self._models,
            (b"GET", b"/health"): self._health,
            (b"GET", b"/fake/stats"): self._stats,
            (b"POST", b"/fake/reset"): self._reset,
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> str:
        """Listen on `host`:`port` (default: the config's; port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        host = self.config.host if host is None else host
        self._server = await loop.create_server(
            lambda: Connection(self),
            host,
            self.config.port if port is None else port,
            reuse_address=True,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening, drop open connections and end running requests."""
        if self._server is None:
            return
        self._server.close()
        tasks = [c.task for c in self._connections if c.task is not None]
        for conn in list(self._connections):
            conn.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # an aborted transport closes its socket in a callback: let those run before
        # the caller's loop may close (with no task to wait for, nothing above yields)
        await asyncio.sleep(0)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def connection_opened(self, conn: Connection) -> None:
        self._connections.add(conn)

    def connection_closed(self, conn: Connection) -> None:
        self._connections.discard(conn)

    # -- dispatch ----------------------------------------------------------------------

    def dispatch(self, conn: Connection, req: Request) -> Coroutine[Any, Any, None] | None:
        handler = self._routes.get((req.method, req.path))
        if handler is not None:
            return handler(conn, req)
        if req.path.startswith(b"/fake/") or req.path == b"/health":
            conn.send(404, shapes.error("no such fake-llm endpoint", 404), req.keep_alive)
            return None
        rec = self._receive(req)
        if req.method == b"GET" and req.path.startswith(b"/v1/models/"):
            name = req.path[len(b"/v1/models/") :].decode("utf-8", "replace")
            if name in self.config.models:
                self._answer(conn, req, rec, 200, orjson.dumps(shapes.model_object(name)))
                return None
            msg = f"The model '{name}' does not exist"
            self._answer(conn, req, rec, 404, shapes.error(msg, 404, "model", "model_not_found"))
            return None
        known = any(path == req.path for _, path in self._routes)
        status = 405 if known else 404
        method, path = req.method.decode("latin-1"), req.path.decode("latin-1")
        msg = f"Invalid URL ({method} {path})" if status == 404 else f"{method} not allowed here"
        self._answer(conn, req, rec, status, shapes.error(msg, status))
        return None

    def _receive(self, req: Request) -> Record:
        self._seq += 1
        rec = Record(self._seq, self.clock(), req.method, req.url, req.headers, req.body)
        self.stats.received(rec, req.path)
        return rec

    def _end(self, rec: Record, outcome: str, status: int | None = None) -> None:
        st = self.stats
        st.in_flight -= 1
        rec.outcome = outcome
        if status is not None:
            rec.status = status
            st.statuses[status] += 1
        if outcome == "completed":
            st.completed += 1
        elif outcome == "cancelled":
            st.cancelled += 1
        else:
            st.dropped += 1

    def _answer(
        self,
        conn: Connection,
        req: Request,
        rec: Record,
        status: int,
        body: bytes,
        extra: bytes = b"",
    ) -> None:
        conn.send(status, body, req.keep_alive, extra=extra)
        self._end(rec, "completed", status)

    # -- fixed endpoints ---------------------------------------------------------------

    def _models(self, conn: Connection, req: Request) -> None:
        self._answer(conn, req, self._receive(req), 200, self._models_body)

    def _health(self, conn: Connection, req: Request) -> None:
        conn.send(200, b'{"status":"ok"}', req.keep_alive)

    def _stats(self, conn: Connection, req: Request) -> None:
        conn.send(200, orjson.dumps(self.stats.to_dict()), req.keep_alive)

    def _reset(self, conn: Connection, req: Request) -> None:
        self.stats.reset()
        conn.send(200, b'{"reset":true}', req.keep_alive)

    # -- generation --------------------------------------------------------------------

    def _chat(self, conn: Connection, req: Request) -> Coroutine[Any, Any, None] | None:
        return self._generate(conn, req, "chat")

    def _text(self, conn: Connection, req: Request) -> Coroutine[Any, Any, None] | None:
        return self._generate(conn, req, "text")

    def _embeddings(self, conn: Connection, req: Request) -> Coroutine[Any, Any, None] | None:
        return self._generate(conn, req, "embed")

    def _generate(
        self, conn: Connection, req: Request, kind: str
    ) -> Coroutine[Any, Any, None] | None:
        rec = self._receive(req)
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            msg = f"We could not parse the JSON body of your request: {exc}"
            self._answer(conn, req, rec, 400, shapes.error(msg, 400))
            return None
        try:
            if kind == "embed":
                job = self.planner.embedding(body, req.fake)
            else:
                job = self.planner.generation(kind, body, req.fake)
        except BadRequest as exc:
            err = shapes.error(str(exc), exc.status, exc.param, exc.code)
            self._answer(conn, req, rec, exc.status, err)
            return None
        fault = job.fault
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault[0].isdigit():
                self._fault_status(conn, req, rec, int(fault))
                return None
            if fault == "reset":
                conn.reset()
                self._end(rec, "dropped")
                return None
            if fault == "timeout":
                return self._hang(rec)
        limit = self.config.max_concurrency
        if limit is not None and self.stats.running >= limit:
            if self.config.overload == "reject":
                self.stats.rejected += 1
                msg = f"fake-llm is at max_concurrency ({limit}); try again later"
                self._answer(conn, req, rec, 503, shapes.error(msg, 503))
                return None
            return self._run(conn, req, rec, job, queued=True)
        if job.slow == 0 and self._is_instant(job):
            self.stats.running += 1
            try:
                self._write_now(conn, req, rec, job)
            finally:
                self.stats.running -= 1
            return None
        return self._run(conn, req, rec, job, queued=False)

    def _is_instant(self, job: Job) -> bool:
        ttft = self._ttft_zero if job.ttft is None else job.ttft == 0
        if job.kind == "embed" or job.tokens <= 1:
            return ttft
        return ttft and (self._itl_zero if job.itl is None else job.itl == 0)

    def _fault_status(self, conn: Connection, req: Request, rec: Record, status: int) -> None:
        extra = b""
        if status == 429:
            after = self.config.faults.retry_after_s
            extra = b"retry-after: %d\r\nretry-after-ms: %d\r\n" % (
                math.ceil(after),
                round(after * 1000),
            )
        msg = shapes.ERROR_MESSAGES.get(status, f"fake-llm fault: HTTP {status}")
        err = shapes.error(msg.format(retry=self.config.faults.retry_after_s), status)
        self._answer(conn, req, rec, status, err, extra)

    async def _hang(self, rec: Record) -> None:
        """`timeout`: accept and never answer, until the client gives up."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self._end(rec, "cancelled")
            raise

    # -- admission and load ------------------------------------------------------------

    async def _admit(self) -> None:
        st = self.stats
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        st.queued += 1
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # granted while being cancelled: pass the slot on
            raise
        finally:
            st.queued -= 1

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to the next in line
                return
        self.stats.running -= 1

    def _scaled(self, ms: float) -> float:
        """Seconds for a sampled delay of `ms`, stretched by the load (module doc)."""
        factor = self.stats.running / self.config.capacity
        return ms / 1000 * (factor if factor > 1 else 1.0)

    def _ttft(self, job: Job) -> float:
        if job.ttft is not None:
            return job.ttft
        return self._scaled(self.config.ttft_ms.sample(self.rng))

    def _itl(self, job: Job) -> float:
        if job.itl is not None:
            return job.itl
        return self._scaled(self.config.itl_ms.sample(self.rng))

    def _decode(self, job: Job) -> float:
        """The whole decode phase of a non-streaming answer: one delay per later token."""
        n = job.tokens - 1
        if n <= 0:
            return 0.0
        if job.itl is not None:
            return job.itl * n
        d = self.config.itl_ms
        total = d.a * n if d.kind == "constant" else sum(d.sample(self.rng) for _ in range(n))
        return self._scaled(total)

    # -- answering ---------------------------------------------------------------------

    async def _run(
        self, conn: Connection, req: Request, rec: Record, job: Job, queued: bool
    ) -> None:
        try:
            if queued:
                await self._admit()
            else:
                self.stats.running += 1
            try:
                for delay, data in self._plan(req, rec, job):
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if conn.closed:
                        raise asyncio.CancelledError
                    if data is DROP:
                        conn.close()
                        self._end(rec, "dropped")
                        return
                    conn.write(data)
                    await conn.drain()
            finally:
                self._release()
        except asyncio.CancelledError:
            self._end(rec, "cancelled")
            raise
        if not req.keep_alive:
            conn.close()
        self._end(rec, "completed")

    def _write_now(self, conn: Connection, req: Request, rec: Record, job: Job) -> None:
        if not job.stream and job.fault is None:  # the benchmarked path: one write
            status = 200
            conn.send(status, self._body(job, rec), req.keep_alive)
            self._end(rec, "completed", status)
            return
        parts: list[bytes] = []
        for _, data in self._plan(req, rec, job):
            if data is DROP:
                conn.write(b"".join(parts))
                conn.close()
                self._end(rec, "dropped")
                return
            parts.append(data)
        conn.write(b"".join(parts))
        if not req.keep_alive:
            conn.close()
        self._end(rec, "completed")

    def _body(self, job: Job, rec: Record) -> bytes:
        created = int(self.clock())
        if job.kind == "embed":
            vectors = [content.embedding(t, self.config.seed, job.dimensions) for t in job.inputs]
            return shapes.embeddings(job.model, vectors, job.prompt_tokens, job.encoding)
        n = job.tokens
        if job.kind == "chat":
            rid = f"chatcmpl-fake{rec.seq}"
            return shapes.chat_completion(
                rid, created, job.model, job.text, job.finish, job.prompt_tokens, n
            )
        rid = f"cmpl-fake{rec.seq}"
        return shapes.text_completion(
            rid, created, job.model, job.text, job.finish, job.prompt_tokens, n
        )

    def _sent_head(self, rec: Record) -> None:
        rec.status = 200
        self.stats.statuses[200] += 1

    def _plan(self, req: Request, rec: Record, job: Job) -> Iterator[tuple[float, bytes | None]]:
        """(delay in seconds, bytes to write after it) pairs, computed as they are taken
        so each delay sees the load of its moment; `DROP` cuts the connection."""
        if not job.stream:
            ttft = job.slow + self._ttft(job)
            yield ttft, b""
            body = self._body(job, rec)
            head_bytes = head(200, b"application/json", len(body), req.keep_alive)
            if job.fault == "disconnect":
                yield self._decode(job), head_bytes + body[: len(body) // 2]
                self._sent_head(rec)
                yield 0.0, DROP
                return
            yield self._decode(job), head_bytes + body
            self._sent_head(rec)
            return
        yield job.slow, head(200, SSE, None, req.keep_alive)
        self._sent_head(rec)
        created = int(self.clock())
        prefix = "chatcmpl-fake" if job.kind == "chat" else "cmpl-fake"
        w = shapes.ChunkWriter(
            job.kind == "chat", f"{prefix}{rec.seq}", created, job.model, job.include_usage
        )
        drop_after = job.disconnect_after if job.fault == "disconnect" else -1
        if drop_after == 0:
            yield self._ttft(job), DROP
            return
        pieces = self.planner.pieces(job)
        first = pieces[0] if pieces else ""
        if pieces or job.kind == "chat":
            yield self._ttft(job), chunk(w.first(first))
        for i in range(1, len(pieces)):
            if i == drop_after:
                yield 0.0, DROP
                return
            yield self._itl(job), chunk(w.token(pieces[i]))
        if len(pieces) == drop_after:
            yield 0.0, DROP
            return
        tail = chunk(w.finish(job.finish))
        if job.include_usage:
            tail += chunk(w.usage(job.prompt_tokens, len(pieces)))
        yield 0.0, tail + chunk(shapes.DONE) + LAST_CHUNK
