"""Child processes that die with the gateway: no orphans even after SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


class StartupError(Exception):
    """A dependency could not be started; the message says what to change."""


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Fail clearly when a port we are about to give a child is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise StartupError(
                f"{host}:{port} is already in use; free it or set {setting}"
            ) from None


def _child_setup(sig: int, run_as: tuple[int, int] | None) -> Callable[[], None]:
    def setup() -> None:
        if run_as is not None:
            # Drop privileges first: changing credentials clears the death signal.
            os.setgroups([])
            os.setgid(run_as[1])
            os.setuid(run_as[0])
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)

    return setup


async def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    death_signal: int = signal.SIGTERM,
    run_as: tuple[int, int] | None = None,
    **kwargs: Any,
) -> asyncio.subprocess.Process:
    """Start a child in its own session (Ctrl-C reaches only us, we stop it in order)."""
    log = log_path.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_child_setup(death_signal, run_as),
            **kwargs,
        )
    finally:
        log.close()


async def stop(process: asyncio.subprocess.Process, sig: int, timeout_s: float = 15.0) -> None:
    """Signal a child and wait; kill it if it does not exit in time."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(
    host: str, port: int, process: asyncio.subprocess.Process, timeout_s: float, what: str
) -> None:
    """Wait until something accepts connections on host:port, or fail with the log hint."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if process.returncode is not None:
            raise StartupError(
                f"{what} exited with code {process.returncode} during start-up; see its log"
            )
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise StartupError(f"{what} did not listen on {host}:{port} in time") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
