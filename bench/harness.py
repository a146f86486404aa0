"""Child processes of the benchmarks: the fake upstream and `pmp-gateway serve`.

Run as a script (`python bench/harness.py PORT`) it serves the fake OpenAI upstream.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ADMIN_KEY = "pk_admin_bench_" + "b" * 32
UPSTREAM_KEY = "sk-bench-upstream-secret"
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_API_KEY"


class StartupError(RuntimeError):
    """The upstream or the gateway did not come up."""


@dataclass
class Processes:
    """The child processes this script owns."""

    workdir: Path
    upstream: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    # The gateway's embedded Temporal frontend, once start_gateway has chosen its port.
    temporal_address: str | None = None

    @property
    def gateway_log(self) -> Path:
        return self.workdir / "gateway.log"


# --------------------------------------------------------------------------- child processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def serve_upstream(port: int) -> None:
    """Child-process entry: run the fake OpenAI upstream until SIGTERM."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from tests.fakes.openai_upstream import FakeOpenAI

    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    uvicorn.run(
        fake.app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off"
    )


def start_upstream(procs: Processes) -> str:
    port = free_port()
    log = (procs.workdir / "upstream.log").open("wb")
    procs.upstream = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    wait_for_tcp(port, procs.upstream, 30.0, "fake upstream")
    return f"http://{HOST}:{port}"


def wait_for_tcp(port: int, process: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise StartupError(f"{what} did not listen on {HOST}:{port} within {timeout_s:.0f} s")


def gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("pmp-gateway")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "gateway_api.cli", "serve"]


def gateway_env(workdir: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PMP_")}
    env.update(
        {
            "PMP_DATA_DIR": str(workdir / "data"),
            "PMP_HOST": HOST,
            "PMP_PORT": str(port),
            "PMP_TEMPORAL_PORT": str(free_port()),
            "PMP_TEMPORAL_UI_PORT": str(free_port()),
            "PMP_TEMPORAL_UI": "false",
            "PMP_ADMIN_KEY": ADMIN_KEY,
            "PMP_LOG_LEVEL": "WARNING",
            # Keep the breaker closed so the chain phase measures a real fallback each time.
            "PMP_BREAKER_MIN_REQUESTS": "1000000000",
            UPSTREAM_KEY_ENV: UPSTREAM_KEY,
        }
    )
    return env


def start_gateway(procs: Processes) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = gateway_env(procs.workdir, port)
    procs.temporal_address = f"{HOST}:{env['PMP_TEMPORAL_PORT']}"
    log = procs.gateway_log.open("wb")
    procs.gateway = subprocess.Popen(
        gateway_command(),
        env=env,
        cwd=procs.workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    return f"http://{HOST}:{port}", procs.gateway


def stop_process(process: subprocess.Popen[bytes] | None, what: str, timeout_s: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        print(f"warning: {what} ignored SIGTERM for {timeout_s:.0f} s; killing it", file=sys.stderr)
        process.kill()
        code = process.wait()
    if code not in (0, -signal.SIGTERM):
        print(f"warning: {what} exited with code {code} after SIGTERM", file=sys.stderr)


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def log_problems(path: Path) -> list[str]:
    if not path.exists():
        return []
    markers = ("ERROR", "CRITICAL", "Traceback", "Exception")
    return [
        line
        for line in path.read_text(errors="replace").splitlines()
        if any(marker in line for marker in markers)
    ]


if __name__ == "__main__":
    serve_upstream(int(sys.argv[1]))
