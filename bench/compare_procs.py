"""What each process of a benchmarked system costs, read from the OS (psutil over /proc).

A system is a root process (the gateway, LiteLLM's proxy, the fake upstream) and its
descendants; each descendant is put into a role by its command line, so the gateway's
embedded Temporal dev server, PostgreSQL and Redis are reported apart from the gateway's
own Python process.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]  # a dev dependency without stubs


def role_of(process: psutil.Process, root_role: str) -> str:
    """`temporal`, `postgres`, `redis`, or the root's role for everything else."""
    try:
        argv = process.cmdline()
        name = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return root_role
    text = " ".join(argv[:3]) + " " + name
    if "temporal" in name or "start-dev" in argv:
        return "temporal"
    if "postgres" in text:
        return "postgres"
    if "redis-server" in text:
        return "redis"
    return root_role


def tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(root_pid: int, root_role: str) -> Counter[str]:
    """User+system CPU seconds used so far, by role, over the live process tree."""
    used: Counter[str] = Counter()
    for process in tree(root_pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        used[role_of(process, root_role)] += times.user + times.system
    return used


def rss_bytes(root_pid: int, root_role: str) -> Counter[str]:
    """Resident memory by role (PostgreSQL's shared buffers are counted once per backend)."""
    resident: Counter[str] = Counter()
    for process in tree(root_pid):
        try:
            resident[role_of(process, root_role)] += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return resident


@dataclass(frozen=True)
class Probe:
    """The processes of one system whose CPU a phase charges."""

    role: str
    root_pid: int

    def cpu(self) -> Counter[str]:
        return cpu_seconds(self.root_pid, self.role)


def temporal_metrics_url(gateway_pid: int) -> str | None:
    """The embedded dev server's Prometheus endpoint, from its command line."""
    for process in tree(gateway_pid):
        try:
            argv = process.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "start-dev" in argv and "--metrics-port" in argv:
            port = argv[argv.index("--metrics-port") + 1]
            return f"http://127.0.0.1:{port}/metrics"
    return None


def thread_cpu(pid: int) -> Counter[str]:
    """CPU seconds by thread name (digits dropped, so pools add up) of one process."""
    used: Counter[str] = Counter()
    task_dir = f"/proc/{pid}/task"
    try:
        threads = psutil.Process(pid).threads()
    except psutil.NoSuchProcess:
        return used
    for thread in threads:
        try:
            with open(f"{task_dir}/{thread.id}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        used[re.sub(r"[-_]?\d+$", "", name) or name] += thread.user_time + thread.system_time
    return used


def python_speed_ms() -> float:
    """ms per million pure-Python additions, best of three: how fast this machine is now.

    Absolute figures from two sessions are comparable only through it (a shared machine
    has run the same code at a quarter of the speed of another day's).
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return 1000 * best
