"""The chat-completion use case: limits, routing, prompts, cache, then one ChatWorkflow run.

Every answer that is not a cache hit is a durable run: plain calls await it, streams relay
its chunks, `async=true` answers 202 with the run as an operation.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway_api.services.accounting import Accounting, UsageAccount
from gateway_api.services.answers import Answer, EventStreamAnswer, JsonAnswer, run_headers
from gateway_api.services.background import Background
from gateway_api.services.cache_policy import CachePlan, RequestControl, ResponseCacheService
from gateway_api.services.limits import RateLimitGate
from gateway_api.services.operations import CALLBACK_MEMO, operation_attributes, pending_document
from gateway_api.services.prompt_refs import PromptReferences
from gateway_api.services.routing import Route, Router
from gateway_api.services.run_client import RunClient, RunOptions
from gateway_api.services.stream_relay import StreamRelay
from gateway_core.auth.service import Caller
from gateway_core.auth.tokens import estimate_request_tokens
from gateway_core.callbacks import CallbackTargets
from gateway_core.domain.chat import ChatResult, ChatWorkflowInput
from gateway_core.domain.operations import (
    idempotent_id,
    new_operation_id,
    response_with_metadata,
)
from gateway_core.domain.prompts import PromptUse
from gateway_core.errors import GatewayError, InvalidRequestError
from gateway_core.logging import request_id_var
from gateway_core.metrics import GatewayMetrics
from gateway_core.streaming.bus import StreamBus

OPERATION_TYPE = "chat.completion"
CHAT_WORKFLOW = "ChatWorkflow"


@dataclass(frozen=True)
class ChatCall:
    """One chat request as the router parsed it."""

    caller: Caller
    model: str
    body: dict[str, Any]  # the OpenAI request minus `model` and gateway extensions
    stream: bool = False
    include_usage: bool = False
    cache: RequestControl = field(default_factory=RequestControl)
    run_async: bool = False
    idempotency_key: str | None = None
    callback_url: str | None = None
    # Filled as soon as they are known (rate limits first), so every answer carries them.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedRun:
    """A request past its checks: where it goes, what it sends, how it is accounted."""

    call: ChatCall
    route: Route
    body: dict[str, Any]
    prompts: list[PromptUse]
    account: UsageAccount
    request_hash: str | None


class ChatService:
    """Answers chat completions; holds only what that needs."""

    def __init__(
        self,
        *,
        router: Router,
        limits: RateLimitGate,
        prompts: PromptReferences,
        cache: ResponseCacheService,
        runs: RunClient,
        accounting: Accounting,
        bus: StreamBus | None,
        metrics: GatewayMetrics,
        background: Background,
        callbacks: CallbackTargets,
        max_messages: int,
    ) -> None:
        self._callbacks = callbacks
        self._max_messages = max_messages
        self._router = router
        self._limits = limits
        self._prompts = prompts
        self._cache = cache
        self._runs = runs
        self._accounting = accounting
        self._bus = bus
        self._metrics = metrics
        self._background = background

    async def create(self, call: ChatCall) -> Answer:
        """The answer to one chat request (JSON, an event stream, or 202 for async)."""
        prepared = await self._prepare(call)
        if call.run_async:
            return await self._start_operation(prepared)
        return await self._answer(prepared)

    async def _prepare(self, call: ChatCall) -> PreparedRun:
        # Limits first: an over-limit caller costs no lookups, and every answer (403 and
        # 404 included) carries the x-ratelimit-* headers. Prompt references are estimated
        # before rendering; the real usage corrects the estimate afterwards.
        if len(call.body["messages"]) > self._max_messages:
            raise InvalidRequestError(
                f"`messages` has {len(call.body['messages'])} entries; at most "
                f"{self._max_messages} are accepted",
                param="messages",
                code="too_many_messages",
            )
        estimate = estimate_request_tokens(call.body)
        await self._limits.admit(call.caller, tokens=estimate, headers=call.headers)
        route = await self._router.resolve(call.model)
        call.caller.require(route.permission_kind, call.model)
        messages, prompts = await self._prompts.render(call.body["messages"], call.caller)
        body = {**call.body, "messages": messages}
        account = self._accounting.open(call.caller, call.model, estimate)
        request_hash = _request_hash(call.model, body) if call.idempotency_key else None
        return PreparedRun(call, route, body, prompts, account, request_hash)

    async def _start_operation(self, run: PreparedRun) -> Answer:
        """`?async=true`: start the same run and answer 202 with its operation id at once."""
        call = run.call
        if call.stream:
            raise InvalidRequestError("`stream` cannot be combined with async=true", param="stream")
        if call.callback_url:
            self._callbacks.admit(call.callback_url)
        operation_id = (
            idempotent_id("op-", call.caller.key_id, call.idempotency_key)
            if call.idempotency_key
            else new_operation_id()
        )
        options = RunOptions(
            search_attributes=operation_attributes(call.caller.key_id, OPERATION_TYPE),
            memo={CALLBACK_MEMO: True} if call.callback_url else None,
            request_hash=run.request_hash,
        )
        await self._start(run, operation_id, stream=False, options=options, operation=True)
        run.account.submitted()  # nobody waits for the answer: the estimate stays charged
        document = pending_document(operation_id, OPERATION_TYPE)
        headers = {"location": f"/v1/operations/{operation_id}", "x-pmp-run-id": operation_id}
        answer = document.model_dump(exclude_none=True)
        if call.callback_url:  # shown here only: the key that verifies this run's callbacks
            answer["callback_secret"] = self._callbacks.secret_for(operation_id)
        return JsonAnswer(answer, headers, status=202)

    async def _answer(self, run: PreparedRun) -> Answer:
        """A cached answer, else the run's: counted and timed per requested model."""
        call = run.call
        run_id = (
            idempotent_id("chat-", call.caller.key_id, call.idempotency_key)
            if call.idempotency_key
            else f"chat-{uuid.uuid4().hex}"
        )
        started = time.perf_counter()
        outcome, served_by = "error", ""
        plan = self._cache.plan(call.caller, run.route, run.body, call.model, call.cache)
        try:
            hit = await plan.lookup()
            if hit is not None:  # answered without a run: no Temporal, no provider
                outcome, served_by = "ok", hit.served_by
                run.account.settle(hit.served_by, None)
                return plan.replay(hit, stream=call.stream, include_usage=call.include_usage)
            answer, served_by = await self._run(run, run_id, plan)
            outcome = "ok"
            return answer
        except GatewayError as error:
            error.headers["x-pmp-run-id"] = run_id
            outcome = type(error).__name__
            run.account.settle(None, None)
            raise
        finally:
            self._metrics.requests.labels(call.model, served_by, outcome).inc()
            self._metrics.request_latency.labels(call.model, str(call.stream)).observe(
                time.perf_counter() - started
            )

    async def _run(self, run: PreparedRun, run_id: str, plan: CachePlan) -> tuple[Answer, str]:
        extra = plan.headers()
        if (url := self._runs.run_url(run_id)) is not None:
            extra["x-pmp-run-url"] = url
        if run.call.stream:
            return await self._stream(run, run_id, plan, extra)
        result = await self._runs.execute(
            CHAT_WORKFLOW,
            self._workflow_input(run, stream=False),
            run_id=run_id,
            result_type=ChatResult,
            options=self._options(run),
        )
        run.account.settle(result.served_by, result.response.get("usage"))
        await plan.store(result.response, result.served_by)
        if result.fallbacks and result.chain_id:
            self._metrics.fallbacks.labels(result.chain_id).inc(result.fallbacks)
        headers = run_headers(run_id, result.served_by, result.attempts, result.fallbacks)
        body = response_with_metadata(result, run_id)
        return JsonAnswer(body, headers | extra), result.served_by

    async def _stream(
        self, run: PreparedRun, run_id: str, plan: CachePlan, extra: dict[str, str]
    ) -> tuple[Answer, str]:
        relay = StreamRelay(
            self._bus,
            self._runs,
            self._background,
            run_id,
            run.call.include_usage,
            on_done=run.account.settle,
            on_complete=plan.store if plan.stores else None,
            idempotent=run.request_hash is not None,
        )
        await relay.start(lambda: self._start(run, run_id, stream=True, options=self._options(run)))
        headers = relay.headers()
        sse_headers = headers | extra | {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return EventStreamAnswer(relay.frames(), sse_headers), headers.get("x-pmp-served-by", "")

    @staticmethod
    def _options(run: PreparedRun) -> RunOptions:
        return RunOptions(request_hash=run.request_hash)

    async def _start(
        self,
        run: PreparedRun,
        run_id: str,
        *,
        stream: bool,
        options: RunOptions,
        operation: bool = False,
    ) -> Any:
        """Start the ChatWorkflow run of a prepared request (streams and operations)."""
        return await self._runs.start(
            CHAT_WORKFLOW,
            self._workflow_input(run, stream=stream, operation=operation),
            run_id=run_id,
            result_type=ChatResult,
            options=options,
        )

    @staticmethod
    def _workflow_input(
        run: PreparedRun, *, stream: bool, operation: bool = False
    ) -> ChatWorkflowInput:
        """What a ChatWorkflow run of this request is started with (no secret in it)."""
        return ChatWorkflowInput(
            prompts=run.prompts,
            steps=run.route.steps,
            body=run.body,
            stream=stream,
            request_id=request_id_var.get(),
            chain_id=run.route.chain_id,
            chain_version=run.route.chain_version,
            callback_url=run.call.callback_url if operation else None,
            operation_type=OPERATION_TYPE if operation else None,
        )


def _request_hash(model: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"model": model, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
