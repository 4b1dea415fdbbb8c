"""LiteLLM's proxy as a benchmark baseline: installed reproducibly, run offline, stopped cleanly.

LiteLLM lives in its own venv, /work/main/.bench/litellm-venv (kept out of the project's
dependencies), made with ``python3 -m venv`` and ``pip install 'litellm[proxy]'`` only when it is
missing. The proxy is given one model, ``gpt-4o-mini`` by default, routed as
``openai/<model>`` to an OpenAI-compatible upstream (the fake LLM, or any stub), and runs on
127.0.0.1 and a free port with master key ``sk-bench``.

Library use::

    from litellm_proxy import start_litellm

    with start_litellm("http://127.0.0.1:9000/v1") as (proc, base_url, key):
        ...  # POST f"{base_url}/v1/chat/completions" with "Authorization: Bearer {key}"

CLI::

    .venv/bin/python bench/litellm_proxy.py install          # venv + pip install, timed
    .venv/bin/python bench/litellm_proxy.py serve --upstream http://127.0.0.1:9000/v1

Offline start: no network but the package registries is reachable here, so everything LiteLLM
would fetch at start or per request is switched off through its environment (see
``offline_env``): the model cost map is read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``),
telemetry is off, no database is configured (so no prisma), and the upstream's ``api_base`` is
given explicitly. ``api_base`` must include the ``/v1`` prefix: LiteLLM's OpenAI route appends
``/chat/completions`` to it. DATABASE_URL must be absent, not empty: an empty one stops the
proxy at start ("unsupported scheme"), so it is removed from the child's environment.

What to expect here (litellm 1.106, 2 cores): the install takes ~80 s (pip's own warnings about
the machine's missing file:// indexes are harmless); the proxy needs ~12 s to be ready; one
worker is CPU-bound at ~20 ms of Python per request (its many middlewares, auth, router,
logging), so ~40-45 requests/s and ~20 ms added latency unloaded; ``workers=2`` gives ~70-80
requests/s while competing with the load generator for the two cores. A wrong key gets 400.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench" / "litellm-venv"
SPEC = "litellm[proxy]"
KEY = "sk-bench"
MODEL = "gpt-4o-mini"
MARKER = ".bench-installed"


def litellm_bin(venv: Path = VENV) -> Path:
    return venv / "bin" / "litellm"


def installed(venv: Path = VENV) -> bool:
    """True when a complete install is there: the CLI and the marker written after pip's success
    (importing the proxy takes ~13 s here, too slow a check to run at every start)."""
    return litellm_bin(venv).exists() and (venv / MARKER).exists()


def ensure_litellm(venv: Path = VENV, spec: str = SPEC) -> float:
    """Make the venv and install LiteLLM's proxy into it when missing.

    Returns the seconds spent (0.0 when it was already there)."""
    if installed(venv):
        return 0.0
    start = time.perf_counter()
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, spec], check=True)
    (venv / MARKER).write_text(f"{spec}\n")
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline_env() -> dict[str, str]:
    """The environment that lets the proxy start and serve with no network."""
    return {
        "LITELLM_MASTER_KEY": KEY,
        # the model cost map is fetched from GitHub at import unless this is set
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "dummy",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
        "STORE_MODEL_IN_DB": "False",
        # tokenizers: never download from the Hugging Face hub
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }


def proxy_env() -> dict[str, str]:
    """This process's environment plus `offline_env`, less any database settings: with no
    DATABASE_URL the proxy runs without prisma (an empty DATABASE_URL is an error at start)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DIRECT_URL")}
    return {**env, **offline_env()}


def write_config(path: Path, upstream_url: str, model: str = MODEL) -> Path:
    """A config routing `model` as ``openai/<model>`` to `upstream_url` (e.g. http://h:p/v1)."""
    path.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {upstream_url.rstrip('/')}\n"
        "      api_key: dummy\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "  set_verbose: false\n"
        "  json_logs: false\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
        "  disable_spend_logs: true\n"
    )
    return path


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"{base_url}/health/liveliness"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited with {proc.returncode} before it was ready")
        errors = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)
        with contextlib.suppress(*errors), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"litellm not ready at {url} after {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the proxy's process group (its workers too), SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def start_litellm(
    upstream_url: str,
    port: int | None = None,
    *,
    model: str = MODEL,
    workers: int = 1,
    venv: Path = VENV,
    ready_timeout: float = 120.0,
    log_path: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """Run LiteLLM's proxy in front of `upstream_url`; yields (process, base_url, key).

    `upstream_url` is the OpenAI base URL of the upstream, /v1 included. Installs LiteLLM first
    if the venv is missing. The proxy's output goes to `log_path` (a temp file by default), whose
    tail is raised with the error when it fails to start."""
    ensure_litellm(venv)
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        config = write_config(Path(tmp) / "config.yaml", upstream_url, model)
        log = log_path or Path(tmp) / "litellm.log"
        cmd = [str(litellm_bin(venv)), "--config", str(config)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
        env = proxy_env()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            try:
                wait_ready(base_url, proc, ready_timeout)
            except Exception as e:
                tail = log.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{e}\n--- litellm log tail ---\n{tail}") from e
            yield proc, base_url, KEY
        finally:
            stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="make the venv and install litellm[proxy] if missing")
    serve = sub.add_parser("serve", help="run the proxy until Ctrl-C")
    serve.add_argument("--upstream", required=True, help="upstream OpenAI base URL, /v1 included")
    serve.add_argument("--port", type=int)
    serve.add_argument("--model", default=MODEL)
    serve.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "install":
        spent = ensure_litellm()
        print(f"litellm ready in {VENV} ({spent:.1f}s install)")
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with start_litellm(args.upstream, args.port, model=args.model, workers=args.workers) as (
        proc,
        base_url,
        key,
    ):
        print(f"litellm pid {proc.pid} at {base_url} key {key}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            proc.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
