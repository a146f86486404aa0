"""CPU per upstream call of the providers' HTTP client: httpx's own transport against ours.

Starts a minimal loopback upstream in a child process (raw asyncio sockets, so its cost
stays out of this process) that answers every request with a chat completion, or with an
SSE stream of `--chunks` chunks. Then, on uvloop as the gateway runs, sends `--calls`
sequential calls through `build_http_client` (the aiohttp transport under httpx) and
through a plain `httpx.AsyncClient` (httpcore), interleaved over `--rounds` rounds, and
prints this process's CPU per call (user+system) for each, with the ratio. Streams go
through the providers' own `open_stream` and `sse_events`.

Run from the repository root: `.venv/bin/python bench/upstream_transport.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import uvloop
from harness import HOST, free_port, wait_for_tcp

from gateway_core.providers.http import open_stream, sse_events
from gateway_core.providers.registry import build_http_client

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()

UPSTREAM = r"""
import asyncio, json, sys
answer = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
    "finish_reason": "stop"}]}).encode()
chunk = b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
    "model": "m", "choices": [{"index": 0, "delta": {"content": "tok"}}]}).encode() + b"\n\n"
chunks = int(sys.argv[2])
stream = chunk * chunks + b"data: [DONE]\n\n"

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if b"/stream" in head.split(b"\r\n")[0]:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(stream), stream))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""


async def plain_call(http: httpx.AsyncClient, url: str) -> None:
    response = await http.post(f"{url}/v1/chat/completions", content=BODY)
    response.raise_for_status()
    response.json()


async def stream_call(http: httpx.AsyncClient, url: str) -> None:
    request = http.build_request("POST", f"{url}/v1/stream", content=BODY)
    async with open_stream(http, request, None) as lines:
        async for _name, data in sse_events(lines):
            if data == "[DONE]":
                break
            json.loads(data)


async def cpu_ms_per_call(
    http: httpx.AsyncClient, url: str, call: Callable[..., Awaitable[None]], calls: int
) -> float:
    for _ in range(50):  # warm the pool and the code paths
        await call(http, url)
    started = time.process_time()
    for _ in range(calls):
        await call(http, url)
    return (time.process_time() - started) / calls * 1000


async def measure(url: str, calls: int, rounds: int) -> None:
    clients = {
        "httpx transport (httpcore)": lambda: httpx.AsyncClient(timeout=httpx.Timeout(None)),
        "aiohttp transport (ours)": lambda: build_http_client(5.0, 20),
    }
    for label, call in (("plain", plain_call), ("stream", stream_call)):
        figures: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, make in clients.items():
                async with make() as http:
                    figures[name].append(await cpu_ms_per_call(http, url, call, calls))
        medians = {name: statistics.median(values) for name, values in figures.items()}
        baseline, ours = medians.values()
        print(f"{label} calls, CPU ms per call (median of {rounds} rounds of {calls}):")
        for name, value in medians.items():
            rounds_text = " ".join(f"{v:.3f}" for v in figures[name])
            print(f"  {name:28} {value:6.3f}   rounds: {rounds_text}")
        print(f"  ours / httpx's: {ours / baseline:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=20, help="chunks per stream")
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port), str(args.chunks)])
    try:
        wait_for_tcp(port, upstream, 30.0, "loopback upstream")
        print(f"loopback upstream; {args.chunks} chunks per stream; event loop uvloop")
        uvloop.run(measure(f"http://{HOST}:{port}", args.calls, args.rounds))
    finally:
        upstream.terminate()
        upstream.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
