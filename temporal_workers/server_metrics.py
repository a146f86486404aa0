"""The Temporal frontend's request counters, read from a server's Prometheus endpoint.

`service_requests` counts every request the frontend handled, by namespace and operation.
The round-trip test (tests/integration/test_rpc_count.py) and bench/compare.py count
Temporal RPCs per call with it.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx

_SAMPLE = re.compile(r"^service_requests\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# The server's metrics reporter publishes on an interval (1 s by default): a read counts
# once two reads this far apart agree.
SETTLE_S = 1.5
SETTLE_TRIES = 20


def frontend_requests(metrics_text: str, namespace: str) -> Counter[str]:
    """The frontend's handled requests by operation, for one namespace."""
    counts: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("service_name") == "frontend" and labels.get("namespace") == namespace:
            counts[labels["operation"]] += int(float(match["value"]))
    return counts


async def settled_frontend_requests(
    client: httpx.AsyncClient, url: str, namespace: str = "default"
) -> Counter[str]:
    """The counts once the reporter has published everything already handled."""

    async def read() -> Counter[str]:
        response = await client.get(url)
        response.raise_for_status()
        return frontend_requests(response.text, namespace)

    previous = await read()
    for _ in range(SETTLE_TRIES):
        await asyncio.sleep(SETTLE_S)
        current = await read()
        if current == previous:
            return current
        previous = current
    raise RuntimeError(f"the server's request counts kept changing: {dict(previous)}")
