"""The memory soak of `compare.py --soak N`: RSS of the gateway and its Temporal server.

The load runs in slices, N/10 requests' worth of time each (at the c=32 rate measured
before), and the RSS of every role is read after each slice. A first slice of the same
size warms up what fills once (the workflow cache, connection pools, the allocator's
arenas, the server's mutable-state cache); the target is judged on the growth over the
N requests after it, and the whole trajectory is printed so a plateau and a steady climb
look different.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import compare_procs
import compare_report
from compare_load import Endpoint, run_load

SLICES = 10
ROLES = ("gateway", "temporal")
GROWTH_LIMIT_PCT = 10.0


@dataclass(frozen=True)
class Sample:
    """RSS by role once `requests` requests had been answered."""

    requests: int
    resident: Counter[str]


async def soak(
    endpoint: Endpoint, pid: int, concurrency: int, rate: float, requests: int, limit_s: float
) -> tuple[list[Sample], int, float]:
    """Warm-up slice, then SLICES slices; the samples, the errors and the seconds loaded.

    The slices after the warm-up are timed by the warm-up's own rate: a long load runs
    slower than the short phase measured before it, and N requests should still be sent.
    """
    slice_s = _slice_seconds(requests, rate, limit_s)
    samples = [Sample(0, compare_procs.rss_bytes(pid, "gateway"))]
    answered, errors, seconds = 0, 0, 0.0
    for index in range(SLICES + 1):
        load = await run_load(endpoint, concurrency, slice_s)
        answered += load.requests
        errors += load.errors
        seconds += load.seconds
        samples.append(Sample(answered, compare_procs.rss_bytes(pid, "gateway")))
        if index == 0:
            slice_s = _slice_seconds(requests, load.rps, limit_s)
    return samples, errors, seconds


def _slice_seconds(requests: int, rate: float, limit_s: float) -> float:
    return max(min(requests / max(rate, 1.0), limit_s) / SLICES, 1.0)


def report(samples: list[Sample], errors: int, seconds: float) -> list[str]:
    """The soak's lines: its size, each role's trajectory, growth and verdict."""
    warm, last = samples[1], samples[-1]
    lines = [
        f"{last.requests} requests in {seconds:.0f} s ({warm.requests} of them warm-up), "
        f"{errors} errors"
    ]
    for role in ROLES:
        trajectory = " ".join(f"{sample.resident[role] / 2**20:.0f}" for sample in samples)
        growth = 100 * (last.resident[role] - warm.resident[role]) / max(warm.resident[role], 1)
        lines.append(f"{role}: RSS MiB at each slice: {trajectory}")
        lines.append(
            f"{role}: {last.requests - warm.requests} requests after warm-up: "
            f"{warm.resident[role] / 2**20:.0f} -> {last.resident[role] / 2**20:.0f} MiB "
            f"({growth:+.1f}%) -> {compare_report.verdict(growth <= GROWTH_LIMIT_PCT)}"
        )
    return lines
