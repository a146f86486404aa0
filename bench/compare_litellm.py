"""LiteLLM's proxy as the benchmark's point of comparison, from a virtualenv of its own.

The virtualenv lives outside the repository (default ~/.cache/pmp-bench/litellm, or
PMP_BENCH_LITELLM_VENV) and is created with `pip install 'litellm[proxy]'` on first use:
LiteLLM is a benchmark-only tool, never a dependency of the gateway.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import HOST, UPSTREAM_KEY, StartupError, free_port, wait_for_tcp

DEFAULT_VENV = Path.home() / ".cache" / "pmp-bench" / "litellm"
MODEL_NAME = "bench"
READY_TIMEOUT_S = 180.0


def venv_dir() -> Path:
    return Path(os.environ.get("PMP_BENCH_LITELLM_VENV", str(DEFAULT_VENV)))


def ensure_litellm() -> Path:
    """The `litellm` executable, installing it into its own virtualenv when missing."""
    venv = venv_dir()
    executable = venv / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"creating {venv} and installing litellm[proxy] (first run only)...", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
        check=True,
    )
    return executable


def litellm_version() -> str:
    done = subprocess.run(
        [
            str(venv_dir() / "bin" / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def write_config(workdir: Path, upstream_url: str) -> Path:
    """One model, `bench`, on the fake upstream; YAML is a superset of this JSON."""
    config = {
        "model_list": [
            {
                "model_name": MODEL_NAME,
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_litellm(
    workdir: Path, upstream_url: str, workers: int
) -> tuple[str, str, subprocess.Popen[bytes]]:
    """LiteLLM's proxy with `workers` workers; its URL, master key and process."""
    executable = ensure_litellm()
    config = write_config(workdir, upstream_url)
    port = free_port()
    key = "sk-litellm-bench-" + secrets.token_hex(16)
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": key,
        # Its bundled price map: nothing is fetched from the internet at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    log = (workdir / f"litellm-{workers}.log").open("wb")
    argv = [str(executable), "--config", str(config), "--host", HOST, "--port", str(port)]
    process = subprocess.Popen(
        [*argv, "--num_workers", str(workers)],
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    wait_for_tcp(port, process, READY_TIMEOUT_S, f"LiteLLM ({workers} workers)")
    base_url = f"http://{HOST}:{port}"
    wait_answering(base_url, key, process)
    return base_url, key, process


def wait_answering(base_url: str, key: str, process: subprocess.Popen[bytes]) -> None:
    """Every worker must answer: a few dozen calls reach each of them in practice."""
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "ready?"}]}
    headers = {"authorization": f"Bearer {key}"}
    deadline = time.monotonic() + READY_TIMEOUT_S
    answered = 0
    with httpx.Client(timeout=30.0) as client:
        while answered < 40:
            if process.poll() is not None or time.monotonic() > deadline:
                raise StartupError("LiteLLM did not answer chat calls")
            try:
                response = client.post(
                    f"{base_url}/v1/chat/completions", json=body, headers=headers
                )
                answered += response.status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
