"""The `pmp-gateway` command: serve (embedded default), api, worker, export, import, ingest, ui."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import uvicorn
import uvloop

from gateway_api.app import create_app
from gateway_api.assembly import Mode, Runtime, open_runtime
from gateway_api.config_cli import (
    CommandError,
    apply_config,
    describe_report,
    export_command,
    import_command,
    read_config_file,
)
from gateway_api.ingest_cli import add_ingest_command, run_ingest_command
from gateway_api.middleware import DrainState
from gateway_api.ui.server import add_ui_command, run_ui_command
from gateway_core.auth.keys import ADMIN_KEY_FILE
from gateway_core.config import Settings
from gateway_core.config_io import GatewayConfig
from gateway_core.logging import configure_logging
from gateway_core.metrics import serving_metrics
from gateway_core.process import StartupError
from temporal_workers.client import install_sdk_metrics

logger = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in {"host": args.host, "port": args.port, "data_dir": args.data_dir}.items()
        if value is not None
    }
    return Settings(**overrides)


def _announce(settings: Settings, runtime: Runtime, port: int) -> None:
    lines = [
        "PMP LLM Gateway is ready",
        f"  API:          http://{settings.host}:{port}/v1",
        f"  Temporal:     {runtime.temporal.address} (namespace {settings.temporal_namespace})",
    ]
    if runtime.temporal.ui_url:
        lines.append(f"  Temporal UI:  {runtime.temporal.ui_url}")
    lines.append(f"  Data dir:     {settings.data_dir}")
    if settings.admin_key is None:
        lines.append(f"  Admin key:    in {settings.data_dir / ADMIN_KEY_FILE}")
    else:
        lines.append("  Admin key:    from PMP_ADMIN_KEY")
    print("\n".join(lines), flush=True)


# One call allocates thousands of short-lived containers (pydantic models, protobufs,
# dicts): at the default young-generation threshold (700) the collector runs several
# times per call, and its older generations walk the whole start-up heap (the SDK,
# pydantic schemas, routes). Measured with bench/compare.py (issue 12).
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once started: keep start-up's objects out of every collection, collect less often.

    Cycles are still collected; they only wait for more allocations first.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class _Server(uvicorn.Server):
    """uvicorn, except that a stop by SIGINT/SIGTERM ends the process with status 0.

    uvicorn re-raises the captured signal after its graceful shutdown, which turns a
    requested, clean stop into a death by signal.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None],
        drain: DrainState | None = None,
        drain_seconds: float = 0.0,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._drain = drain
        self._drain_seconds = drain_seconds
        self._drain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._loop = asyncio.get_running_loop()
        if self.started:
            self._on_started()
            settle_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The first stop signal drains (PMP_DRAIN_SECONDS), a second one stops at once."""
        if self._drain is None or self._drain.draining or not self.started:
            super().handle_exit(sig, frame)
            return
        self._drain.draining = True  # /ready answers 503 and new requests are refused
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        self._drain_task = asyncio.create_task(self._drain_then_stop())

    async def _drain_then_stop(self) -> None:
        assert self._drain is not None
        logger.info(
            "draining: waiting for requests in flight",
            extra={"in_flight": self._drain.in_flight, "drain_seconds": self._drain_seconds},
        )
        if not await self._drain.wait_idle(self._drain_seconds):
            logger.warning(
                "drain window over; cancelling what is still in flight",
                extra={"in_flight": self._drain.in_flight},
            )
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def _pidfile(settings: Settings) -> Iterator[None]:
    """`bin/down.sh` finds the gateway of a data dir by this file."""
    path = settings.data_dir / "gateway.pid"
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


async def _serve_http(settings: Settings, mode: Mode, startup_config: GatewayConfig | None) -> None:
    async with open_runtime(settings, mode) as runtime:
        if startup_config is not None:
            print(describe_report(await apply_config(runtime, startup_config)), flush=True)
        app = create_app(settings, mode, runtime=runtime)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            # The drain (PMP_DRAIN_SECONDS) came first; then what is left gets cancelled.
            timeout_graceful_shutdown=1,
        )
        server = _Server(
            config,
            on_started=lambda: _announce(settings, runtime, settings.port),
            drain=app.state.drain,
            drain_seconds=settings.drain_seconds,
        )
        await server.serve()
        if not server.started:
            raise StartupError(f"could not listen on {settings.host}:{settings.port}")


async def _run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings, "worker") as runtime:
        settle_heap()
        metrics = runtime.providers.metrics
        with serving_metrics(metrics, settings.host, settings.worker_metrics_port) as port:
            print(
                f"PMP worker polling {settings.temporal_task_queue} on {runtime.temporal.address}"
                + (f"; metrics on http://{settings.host}:{port}/metrics" if port else ""),
                flush=True,
            )
            await stop.wait()


def _add_config_commands(commands: Any) -> None:
    """`export` and `import`, which talk to a running gateway's admin API."""
    export = commands.add_parser("export", help="print a running gateway's configuration")
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    imported = commands.add_parser(
        "import", help="apply a YAML/JSON configuration to a running gateway, all or nothing"
    )
    imported.add_argument("file", type=Path)
    imported.add_argument("--prune", action="store_true", help="delete what the file omits")
    imported.add_argument("--dry-run", action="store_true", help="report, change nothing")
    for sub in (export, imported):
        sub.add_argument("--url", help="the gateway (default http://PMP_HOST:PMP_PORT)")
        sub.add_argument("--data-dir", type=Path, help="where to find the admin-key file")


def _run_config_command(args: argparse.Namespace) -> NoReturn:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        if args.command == "export":
            export_command(settings, args.url, args.format)
        else:
            import_command(settings, args.url, args.file, prune=args.prune, dry_run=args.dry_run)
    except CommandError as error:
        print(f"pmp-gateway {args.command}: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def _startup_config(file: Path | None) -> GatewayConfig | None:
    """The --config file, validated before anything starts; exits when it is invalid."""
    if file is None:
        return None
    try:
        return read_config_file(file)
    except StartupError as error:
        print(f"pmp-gateway: {error}", file=sys.stderr)
        sys.exit(1)


def _prepare_process(settings: Settings) -> None:
    """Logging, the Temporal SDK's metrics, and a private data dir, before anything starts."""
    configure_logging(settings.log_format, settings.log_level)
    install_sdk_metrics(settings)
    # Keys, prompts and answers live in the data dir: nothing in it is for other users.
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pmp-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "API + worker in one process; embeds Temporal and PostgreSQL if not set"),
        ("api", "the HTTP API only, against PMP_TEMPORAL_ADDRESS and PMP_DATABASE_URL"),
        ("worker", "the Temporal worker only, against configured services"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--host")
        sub.add_argument("--port", type=int)
        sub.add_argument("--data-dir", type=Path)
        if name != "worker":
            sub.add_argument(
                "--config", type=Path, help="apply this YAML/JSON configuration at start-up"
            )
    _add_config_commands(commands)
    add_ingest_command(commands)
    add_ui_command(commands)
    commands.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print("pmp-llm-gateway 0.1.0")
        return
    if args.command in ("export", "import"):
        _run_config_command(args)
    if args.command == "ingest":
        sys.exit(run_ingest_command(args))
    if args.command == "ui":
        run_ui_command(args)
        return
    settings = _settings(args)
    _prepare_process(settings)
    startup_config = _startup_config(getattr(args, "config", None))
    main_coroutine = (
        _run_worker(settings)
        if args.command == "worker"
        else _serve_http(settings, args.command, startup_config)
    )
    try:
        with (
            _pidfile(settings),
            contextlib.suppress(KeyboardInterrupt),
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            runner.run(main_coroutine)
    except StartupError as error:
        print(f"pmp-gateway: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
