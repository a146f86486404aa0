"""The printed report of bench/compare.py: the table, the measured extras, the targets."""

from __future__ import annotations

import math
import os
import shutil
from typing import TYPE_CHECKING

from compare_load import percentile

if TYPE_CHECKING:
    from compare import Findings, Row

# The targets of issue 12.
OVERHEAD_RATIO = 0.8  # gateway c=1 p50 overhead <= 0.8 x LiteLLM 1 worker's
THROUGHPUT_RATIO = 0.8  # gateway c=32 throughput >= 0.8 x LiteLLM 2 workers'
CPU_MS = 6.5  # gateway processes + Temporal server per call
TTFT_MS = 10.0
CACHE_HIT_MS = 2.0
SERVER_ROLES = ("gateway", "temporal", "postgres", "redis")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def fmt(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def cpu_text(row: Row) -> str:
    parts = [f"{role} {ms:.2f}" for role, ms in sorted(row.cpu_ms.items()) if ms >= 0.005]
    return " + ".join(parts) + f" = {sum(row.cpu_ms.values()):.2f}" if parts else "-"


def print_table(rows: list[Row]) -> None:
    print(
        f"{'system':<17}{'c':>3}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
        f"{'errors':>7}  CPU ms per request (by process)"
    )
    print("-" * 110)
    for row in rows:
        load = row.load
        print(
            f"{row.system:<17}{row.concurrency:>3}{load.requests:>9}{fmt(load.p50_ms):>9}"
            f"{fmt(load.p99_ms):>9}{fmt(load.rps, 1):>9}{load.errors:>7}  {cpu_text(row)}"
        )


def print_extras(found: Findings) -> None:
    print("\nstreaming time to first content chunk, c=1 (p50 / p99 ms):")
    for name, latencies in found.ttft.items():
        print(
            f"  {name:<17}{fmt(percentile(latencies, 0.5)):>8} / "
            f"{fmt(percentile(latencies, 0.99))}  ({len(latencies)} streams)"
        )
    hits = found.cache_hit
    print(
        f"\ngateway cache hit, c=1: p50 {fmt(percentile(hits, 0.5))} ms, "
        f"p99 {fmt(percentile(hits, 0.99))} ms ({len(hits)} calls)"
    )
    print("\nTemporal RPCs per plain call (dev server frontend counters, periodic ones left out):")
    for op, count in sorted(found.rpcs_per_call.items()):
        print(f"  {count:5.2f}  {op}")
    print(f"  {sum(found.rpcs_per_call.values()):5.2f}  in all")
    print("\ngateway process CPU ms per call by thread (c=1):")
    ranked = sorted(found.threads_ms.items(), key=lambda item: -item[1])
    for name, ms in ranked:
        if ms >= 0.01:
            print(f"  {ms:6.2f}  {name}")


def row(found: Findings, system: str, concurrency: int) -> Row | None:
    return next(
        (r for r in found.rows if r.system == system and r.concurrency == concurrency), None
    )


def print_targets(found: Findings, high: int) -> None:
    direct1, direct_n = row(found, "upstream direct", 1), row(found, "upstream direct", high)
    lite1, lite2 = row(found, "LiteLLM 1w", 1), row(found, "LiteLLM 2w", high)
    gw1, gw_n = row(found, "gateway", 1), row(found, "gateway", high)
    if not (direct1 and direct_n and lite1 and lite2 and gw1 and gw_n):
        print("\ntargets: not every phase ran")
        return
    base = direct1.load.p50_ms
    gw_over, lite_over = gw1.load.p50_ms - base, lite1.load.p50_ms - base
    ratio = gw_over / lite_over if lite_over > 0 else math.nan
    print("\nTargets (same run)")
    print(
        f"  c=1 p50 overhead: gateway {fmt(gw_over)} ms vs LiteLLM 1w {fmt(lite_over)} ms "
        f"= {fmt(ratio)} x (<= {OVERHEAD_RATIO}) -> {verdict(ratio <= OVERHEAD_RATIO)}"
    )
    through = gw_n.load.rps / lite2.load.rps
    ok = through >= THROUGHPUT_RATIO and gw_n.load.errors == 0
    print(
        f"  c={high} throughput: gateway {fmt(gw_n.load.rps, 1)} vs LiteLLM 2w "
        f"{fmt(lite2.load.rps, 1)} req/s = {fmt(through)} x (>= {THROUGHPUT_RATIO}, "
        f"{gw_n.load.errors} errors) -> {verdict(ok)}"
    )
    for gw in (gw1, gw_n):
        cpu = sum(gw.cpu_ms.get(role, 0.0) for role in SERVER_ROLES)
        print(
            f"  CPU per call at c={gw.concurrency} (gateway+Temporal+PostgreSQL+Redis): "
            f"{fmt(cpu)} ms (<= {CPU_MS}) -> {verdict(cpu <= CPU_MS)}"
        )
    ttft = percentile(found.ttft.get("gateway", []), 0.5)
    ttft_base = percentile(found.ttft.get("upstream direct", []), 0.5)
    print(
        f"  stream TTFT p50 overhead: {fmt(ttft - ttft_base)} ms (<= {TTFT_MS}) -> "
        f"{verdict(ttft - ttft_base <= TTFT_MS)}"
    )
    hit = percentile(found.cache_hit, 0.5)
    print(f"  cache hit p50: {fmt(hit)} ms (<= {CACHE_HIT_MS}) -> {verdict(hit <= CACHE_HIT_MS)}")


def print_report(found: Findings, high: int, litellm_version: str) -> None:
    generator = "wrk" if shutil.which("wrk") else "httpx (wrk not installed)"
    print(
        f"\n{os.cpu_count()} CPU cores; load generator {generator}; LiteLLM "
        f"{litellm_version}; loopback only. A shared machine is noisy: run it twice."
    )
    speeds = " and ".join(f"{ms:.0f}" for ms in found.speed_ms)
    print(f"machine speed: {speeds} ms per million Python additions (start and end of run)\n")
    print_table(found.rows)
    print_extras(found)
    print_targets(found, high)
    for title, lines in (("memory soak", found.soak), ("profile", found.profile)):
        if lines:
            print(f"\n{title}:")
            for line in lines:
                print(f"  {line}")
    for note in found.notes:
        print(f"note: {note}")
    for what, count in found.errors.items():
        if count:
            print(f"errors: {count} in {what}")
