"""`slokit gateway` as a user runs it: a real process holding the store and its worker
processes (one, and two sharing the port), a real fake-llm, the official `openai`
client, and the events in the DuckDB store after a SIGTERM."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from slokit.fakellm import config_from_dict, running_fake_llm
from slokit.store.duckdb_store import DuckDBStore

from test_server_process import free_port

REQUESTS = 24


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{url} not up:\n{log.read_text()}")


@contextlib.contextmanager
def started(command: list[str], log: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running (output to `log`) until its /healthz at `url` answers 200; on
    leaving, SIGTERM, and a failure naming the log if it does not stop within 60 s."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_up(url, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"did not stop on SIGTERM:\n{log.read_text()}")


@pytest.mark.parametrize("mode", ["gateway", "gateway --workers 2", "serve --gateway"])
def test_gateway_events_reach_the_store(tmp_path: Path, mode: str) -> None:
    fast = {"ttft_ms": 5, "itl_ms": 1, "output_tokens": 6, "seed": 2}
    db, log = tmp_path / "gw.duckdb", tmp_path / "gw.log"
    gw_port, serve_port = free_port(), free_port()
    with running_fake_llm(config_from_dict(fast)) as fake:
        cli = [sys.executable, "-m", "slokit.cli"]
        if mode == "serve --gateway":
            config = tmp_path / "gateway.yaml"
            config.write_text(f"port: {gw_port}\nupstreams: [{{name: a, url: {fake}}}]\n")
            command = [*cli, "serve", "--db", str(db), "--port", str(serve_port),
                       "--gateway", str(config)]  # fmt: skip
        else:
            command = [
                *cli, "gateway", "--upstream", fake, "--port", str(gw_port), "--db", str(db),
                "--serve-port", str(serve_port), "--workers", "2" if "workers" in mode else "1",
            ]  # fmt: skip
        gw = f"http://127.0.0.1:{gw_port}"
        with started(command, log, gw) as process:
            wait_up(f"http://127.0.0.1:{serve_port}", process, log)
            with openai.OpenAI(base_url=gw + "/v1", api_key="anything", max_retries=0) as client:
                for i in range(REQUESTS):
                    if i % 2:
                        stream = client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                        )
                        assert "".join(
                            c.choices[0].delta.content or "" for c in stream if c.choices
                        )
                    else:
                        r = client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "hi"}]
                        )
                        assert r.usage is not None and r.usage.completion_tokens == 6
    with DuckDBStore(db, read_only=True) as store:
        rows = store.query(
            "SELECT count(*) AS n, count(*) FILTER (outcome = 'ok') AS ok, "
            "sum(output_tokens) AS tokens, count(ttft_ms) AS ttft, "
            "count(DISTINCT tenant) AS tenants FROM request_events"
        ).to_pylist()
        scores = store.count("score")
    assert rows == [
        {"n": REQUESTS, "ok": REQUESTS, "tokens": 6 * REQUESTS, "ttft": REQUESTS // 2,
         "tenants": 1}
    ], log.read_text()  # fmt: skip
    assert scores == 3 * REQUESTS  # non_empty, not_truncated, no_refusal per answer


def _allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list"))


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    kids.append(int(d.name))
    return kids


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and 2 CPUs",
)
@pytest.mark.parametrize("how", ["last CPU", "auto"])
def test_cpus_pins_each_worker_and_keeps_the_store_off_them(tmp_path: Path, how: str) -> None:
    usable = sorted(os.sched_getaffinity(0))
    if how == "auto":  # one CPU a worker from the lowest; the store on the rest, or all
        arg, places = "auto", usable[:2]
        store = set(usable[2:]) or set(usable)
    else:  # both workers on the last CPU, the store on the others
        arg, places = str(usable[-1]), [usable[-1]] * 2
        store = set(usable[:-1])
    db, log = tmp_path / "gw.duckdb", tmp_path / "gw.log"
    gw_port, serve_port = free_port(), free_port()
    with running_fake_llm(config_from_dict({"ttft_ms": 1, "output_tokens": 3})) as fake:
        command = [
            sys.executable, "-m", "slokit.cli", "gateway", "--upstream", fake,
            "--port", str(gw_port), "--db", str(db), "--serve-port", str(serve_port),
            "--workers", "2", "--cpus", arg,
        ]  # fmt: skip
        gw = f"http://127.0.0.1:{gw_port}"
        with started(command, log, gw) as process:
            workers = [p for p in _children(process.pid) if b"spawn_main" in
                       Path(f"/proc/{p}/cmdline").read_bytes()]  # fmt: skip
            assert len(workers) == 2, log.read_text()
            # each worker pins itself as it starts, before it starts any thread
            want = sorted(str(c) for c in places)
            deadline = time.monotonic() + 30
            while sorted(_allowed(p) for p in workers) != want and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(_allowed(p) for p in workers) == want
            assert set(os.sched_getaffinity(process.pid)) == store
            r = httpx.post(
                gw + "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            said = " ".join(log.read_text().split())  # the console wraps long lines
            listed = ",".join(map(str, usable[:2])) if how == "auto" else arg
            assert f"workers on CPU {listed}, store on CPU" in said
