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

    wrk runs for a time, not a count. Each slice after the warm-up is timed for its share
    of the requests still to send, at the rate of the slice before it: a long load runs
    slower than the short phase measured before it, and its rate drifts on a shared
    machine. The time limit still caps the whole.
    """
    per_slice = max(requests // SLICES, 1)
    slice_s = min(_seconds_for(per_slice, rate), max(limit_s / SLICES, 1.0))
    samples = [Sample(0, compare_procs.rss_bytes(pid, "gateway"))]
    answered, errors, seconds, soaked_s = 0, 0, 0.0, 0.0
    for index in range(SLICES + 1):
        load = await run_load(endpoint, concurrency, slice_s)
        answered += load.requests
        errors += load.errors
        seconds += load.seconds
        samples.append(Sample(answered, compare_procs.rss_bytes(pid, "gateway")))
        if index > 0:
            soaked_s += load.seconds
        slices_left = SLICES - index
        if slices_left:
            still_to_send = requests - (answered - samples[1].requests)
            wanted = _seconds_for(max(still_to_send // slices_left, 1), load.rps)
            slice_s = min(wanted, max((limit_s - soaked_s) / slices_left, 1.0))
    return samples, errors, seconds


def _seconds_for(requests: int, rate: float) -> float:
    return max(requests / max(rate, 1.0), 1.0)


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
