"""What the provider fakes share: a uvicorn server on loopback, scripted scenarios, and
a provider-neutral view of each request (so one contract test can read every fake)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tests.fakes.openai_upstream import Recorded, Scenario

T = TypeVar("T")

__all__ = [
    "LoopbackServer",
    "Recorded",
    "Scenario",
    "Seen",
    "play_stream",
    "split_arguments",
    "words",
]


@dataclass
class Seen:
    """A request as the provider understood it, whatever its wire format."""

    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (user|assistant, text)
    tool_results: list[tuple[str, str]] = field(default_factory=list)  # (call ref, content)
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, args)
    tools: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # media types
    max_tokens: int | None = None


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [part if i == 0 else " " + part for i, part in enumerate(parts)]


def split_arguments(call: dict[str, Any]) -> tuple[str, str, str, list[str]]:
    """(id, name, arguments, argument pieces) of an OpenAI-shaped scripted tool call."""
    function = call["function"]
    arguments = function["arguments"]
    middle = max(1, len(arguments) // 2)
    return call["id"], function["name"], arguments, [arguments[:middle], arguments[middle:]]


def echo_text(seen: Seen) -> str:
    """The default reply: the last user turn's text (a tool result's content counts)."""
    user_turns = [text for role, text in seen.turns if role == "user"]
    return f"echo: {user_turns[-1] if user_turns else ''}"


class LoopbackServer:
    """Runs a Starlette app on a free loopback port; scenarios answer requests in order."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.scenarios: deque[Scenario] = deque()
        self.requests: list[Recorded] = []
        self.port = 0
        self.app = Starlette(routes=routes)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *scenarios: Scenario) -> None:
        self.scenarios.extend(scenarios)

    def next_scenario(self) -> Scenario:
        return self.scenarios.popleft() if self.scenarios else Scenario()

    async def scripted_scenario(self) -> Scenario:
        """The next scenario, once the delay it scripts before the first byte has passed."""
        scenario = self.next_scenario()
        if scenario.delay_s:
            await asyncio.sleep(scenario.delay_s)
        return scenario

    async def scripted_reply(
        self,
        body: dict[str, Any],
        problem: str | None,
        error: Callable[[int, str, dict[str, str]], Response],
        view: Callable[[dict[str, Any]], Seen],
    ) -> Response | tuple[Scenario, str]:
        """How to answer a generation request: `error(400, problem, {})` for what the real
        API would refuse, else the next scenario's scripted error, else that scenario and
        its reply text (by default an echo of the request `view`)."""
        if problem:
            return error(400, problem, {})
        scenario = await self.scripted_scenario()
        if scenario.status != 200:
            return error(scenario.status, scenario.error_message, scenario.headers)
        text = scenario.content if scenario.content is not None else echo_text(view(body))
        return scenario, text

    def record(self, request: Request, body: dict[str, Any]) -> Recorded:
        """Keep a request as it arrived (refused ones too) for the test to inspect."""
        recorded = Recorded.of(request, body)
        self.requests.append(recorded)
        return recorded

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def sse(event: str | None, data: dict[str, Any]) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


async def play_stream(
    chunks: Sequence[T],
    scenario: Scenario,
    record: Recorded,
    *,
    counts: Callable[[T], bool] = lambda _chunk: True,
    break_with: T | None = None,
) -> AsyncIterator[T]:
    """Send a stream's chunks as the scenario scripts: paced by `chunk_delay_s`, and cut
    before the counted chunk number `break_after_chunks` — by sending `break_with` when
    given (a provider's in-stream error), else by dropping the connection."""
    sent = 0
    try:
        for chunk in chunks:
            if counts(chunk):
                if scenario.break_after_chunks is not None and sent >= scenario.break_after_chunks:
                    if break_with is not None:
                        yield break_with
                        return
                    raise ConnectionAbortedError("scripted mid-stream failure")
                sent += 1
            yield chunk
            if scenario.chunk_delay_s:
                await asyncio.sleep(scenario.chunk_delay_s)
        record.finished = True
    except asyncio.CancelledError:
        record.disconnected = True
        raise
