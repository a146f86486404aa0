"""UserWorkflow: the one interpreter of user-defined workflows.

The definition version, the routes, prompts and knowledge bases it uses are pinned in the
input when the run starts. Variables, conditions and the walk (gateway_core.userflows) are
deterministic workflow code; every step that does I/O is a Temporal step of its own,
named after the step so the Web UI shows the pipeline: a chat step (and each CRAG judge
call) walks its chain with the chat path's ChainWalk, so its retries and fallback apply,
each attempt a regular activity (not the local one a plain chat call uses: a local
activity holds the workflow task open, so the `progress` query, and the operation
document with it, could not name the running step); a knowledge-base search and an HTTP
request are activities. Completed steps are in the history, so a worker that takes over
after a crash does not run them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from gateway_core.crag import (
        CandidateDocument,
        JudgePrompt,
        JudgeSetup,
        Thresholds,
        needs_judge,
        score_documents,
    )
    from gateway_core.domain.chat import ChatResult, ChatWorkflowInput
    from gateway_core.domain.prompts import PromptUse, render_content
    from gateway_core.error_codec import (
        error_from_payload,
        payload_from_application_error,
        payload_from_error,
    )
    from gateway_core.errors import (
        ConflictError,
        GatewayError,
        InvalidRequestError,
        UpstreamError,
        UpstreamTimeoutError,
    )
    from gateway_core.userflows.conditions import decide
    from gateway_core.userflows.definition import (
        ActionValue,
        ChatCompletionStep,
        ConditionalStep,
        CragScoringStep,
        ForEachStep,
        HttpRequestStep,
        KnowledgeBaseSearchStep,
        ParallelStep,
        StepBase,
        WaitForInputStep,
    )
    from gateway_core.userflows.plan import EndWalk, StepWalk
    from gateway_core.userflows.runs import (
        HTTP_REQUEST_ACTIVITY,
        INPUT_UPDATE,
        KB_SEARCH_ACTIVITY,
        PROGRESS_QUERY,
        WORKFLOW_NAME,
        HttpRequestInput,
        InputDelivery,
        KbSearchInput,
        PinnedRoute,
        StepRecord,
        StepStatus,
        UserflowProgress,
        UserWorkflowInput,
        UserWorkflowResult,
        WaitingStep,
    )
    from gateway_core.userflows.validation import validate_input
    from gateway_core.userflows.variables import Scope, resolve_value
    from workflows.chat import NON_RETRYABLE_ERRORS, ChainWalk, InnerStep

STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_ERRORS,
)
SEARCH_TIMEOUT = timedelta(minutes=2)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
StepOutcome = tuple[Any, ActionValue | None]
T = TypeVar("T")


def _reply_text(completion: dict[str, Any]) -> str:
    """The first choice's text ('' for a refusal or tool calls)."""
    message = ((completion.get("choices") or [{}])[0] or {}).get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def gateway_error(error: BaseException) -> GatewayError:
    """The gateway error a failed step carries (its payload, or one made from it)."""
    if isinstance(error, GatewayError):
        return error
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        payload = payload_from_application_error(cause)
        if payload is not None:
            return error_from_payload(payload)
        return UpstreamError(cause.message, retryable=False)
    return UpstreamError(str(cause or error), retryable=False)


def _run_failure(error: GatewayError) -> ApplicationError:
    """The run's final failure (a failed workflow, not a retried workflow task)."""
    payload = payload_from_error(error)
    return ApplicationError(error.message, payload.detail(), type=payload.kind, non_retryable=True)


def _candidates(documents: Any) -> list[CandidateDocument]:
    """Documents from a search step (or written inline) as CRAG candidates."""
    if not isinstance(documents, list):
        raise InvalidRequestError("input_documents is not a list", param="input_documents")
    found = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict) or "content" not in doc:
            raise InvalidRequestError(
                f"input_documents[{index}] has no `content`", param="input_documents"
            )
        score = doc.get("score", doc.get("retrieval_score"))
        found.append(
            CandidateDocument(
                id=str(doc.get("id", index)),
                content=str(doc["content"]),
                metadata=dict(doc.get("metadata") or {}),
                retrieval_score=float(score) if isinstance(score, int | float) else None,
            )
        )
    return found


class _StepJudge:
    """CRAG's Judge as one chain walk per document, named after the scoring step."""

    def __init__(self, run: UserWorkflow, step: str) -> None:
        self._run = run
        self._step = step

    async def ask(self, model_id: str, messages: list[dict[str, Any]]) -> str:
        result = await self._run.chat_call(f"{self._step}-judge", model_id, {"messages": messages})
        return _reply_text(result.response)


@workflow.defn(name=WORKFLOW_NAME)
class UserWorkflow:
    """One execution of one pinned workflow definition."""

    def __init__(self) -> None:
        self._inp: UserWorkflowInput | None = None
        self._records: list[StepRecord] = []
        self._running: list[str] = []
        self._waiting: dict[str, WaitingStep] = {}
        self._delivered: dict[str, Any] = {}
        self._sequence = 0

    @property
    def inp(self) -> UserWorkflowInput:
        if self._inp is None:
            raise ApplicationError("the run has no input yet", non_retryable=True)
        return self._inp

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> UserflowProgress:
        definition = self.inp.definition
        return UserflowProgress(
            workflow_id=definition.id,
            version=definition.version,
            current_steps=list(self._running),
            steps_done=len(self._records),
            waiting_for_input=list(self._waiting.values()),
        )

    @workflow.update(name=INPUT_UPDATE)
    async def deliver_input(self, delivery: InputDelivery) -> None:
        self._delivered[delivery.step] = delivery.value

    @deliver_input.validator
    def _check_delivery(self, delivery: InputDelivery) -> None:
        waiting = self._waiting.get(delivery.step)
        if waiting is None or delivery.step in self._delivered:
            operation_id = workflow.info().workflow_id
            raise _run_failure(
                ConflictError(
                    f"operation {operation_id!r} is not waiting for input",
                    code="not_waiting_for_input",
                )
            )
        problems = validate_input(waiting.input_schema or True, delivery.value)
        if problems:
            text = "; ".join(problem.describe() for problem in problems)
            raise _run_failure(InvalidRequestError(text, param="input", code="invalid_input"))

    @workflow.run
    async def run(self, inp: UserWorkflowInput) -> UserWorkflowResult:
        self._inp = inp
        output = await self._walk(inp.definition.steps, Scope(inp.input))
        return UserWorkflowResult(
            workflow_id=inp.definition.id,
            version=inp.definition.version,
            output=output,
            steps=self._records,
        )

    async def _walk(self, steps: Sequence[StepBase], scope: Scope) -> Any:
        """One step list from its first step: the end_workflow output or the last one's."""
        walk = StepWalk(steps, self.inp.definition.max_steps)
        output: Any = None
        while not walk.done:
            try:
                step = walk.start()
            except GatewayError as error:  # the max_steps bound
                raise _run_failure(error) from None
            output, action = await self._step(step, scope)
            scope = scope.with_step(step.name, output)
            position = walk.finish(action)
            if isinstance(position, EndWalk) and position.explicit:
                try:
                    return resolve_value(position.output, scope, param="end_workflow")
                except GatewayError as error:
                    raise _run_failure(error) from None
        return output

    async def _step(self, step: StepBase, scope: Scope) -> StepOutcome:
        """Run one step, record it, and apply its on_error to a failure."""
        started = workflow.now()
        self._running.append(step.name)
        self._show_running()
        try:
            output, action = await self._execute(step, scope)
        except Exception as exc:
            if is_cancelled_exception(exc):
                raise
            error = gateway_error(exc)
            skipped = step.on_error == "skip"
            self._record(step, started, "skipped" if skipped else "failed", error=error)
            if skipped:
                return {"error": error.to_dict()}, None
            error.message = f"step {step.name!r} failed: {error.message}"
            raise _run_failure(error) from None
        finally:
            self._running.remove(step.name)
            self._show_running()
        self._record(step, started, "completed", output=output)
        return output, action

    def _record(
        self,
        step: StepBase,
        started: datetime,
        status: StepStatus,
        *,
        output: Any = None,
        error: GatewayError | None = None,
    ) -> None:
        took = workflow.now() - started
        self._records.append(
            StepRecord(
                name=step.name,
                status=status,
                output=output,
                error=error.to_dict() if error is not None else None,
                duration_ms=int(took.total_seconds() * 1000),
            )
        )

    async def _execute(self, step: StepBase, scope: Scope) -> StepOutcome:
        if isinstance(step, ConditionalStep):
            decision = decide(step, scope)
            return decision.output(), decision.action
        if isinstance(step, ParallelStep):
            return await self._parallel(step, scope), None
        if isinstance(step, ForEachStep):
            return await self._for_each(step, scope), None
        if isinstance(step, WaitForInputStep):
            return await self._wait_for_input(step)
        fields = {
            name: resolve_value(getattr(step, name), scope, param=name)
            for name in step.TEMPLATED_FIELDS
        }
        resolved = step.model_copy(update=fields)
        if isinstance(resolved, ChatCompletionStep):
            return await self._chat(resolved), None
        if isinstance(resolved, KnowledgeBaseSearchStep):
            return await self._search(resolved), None
        if isinstance(resolved, CragScoringStep):
            return await self._crag(resolved), None
        if isinstance(resolved, HttpRequestStep):
            return await self._http(resolved), None
        raise InvalidRequestError(f"step type {type(step).__name__} cannot run here")

    def _show_running(self) -> None:
        """The Web UI's current details of the run: the steps running now."""
        running = ", ".join(dict.fromkeys(self._running))
        workflow.set_current_details(f"running: {running}" if running else "")

    def _next_id(self, name: str) -> str:
        self._sequence += 1
        return f"{name}-{self._sequence}"

    # --- steps that call out --------------------------------------------------------------

    async def chat_call(
        self,
        name: str,
        model_id: str,
        body: dict[str, Any],
        prompts: Sequence[PromptUse] = (),
    ) -> ChatResult:
        """One chain walk on the route pinned for `model_id`, as the step `name`."""
        route: PinnedRoute | None = self.inp.routes.get(model_id)
        if route is None:
            raise InvalidRequestError(f"model {model_id!r} was not resolved at start")
        chat_input = ChatWorkflowInput(
            steps=route.steps,
            body=body,
            request_id=self.inp.request_id,
            chain_id=route.chain_id,
            chain_version=route.chain_version,
            prompts=list(prompts),
        )
        step = InnerStep(f"step {name}: chat with {model_id}", lambda: self._next_id(name))
        return await ChainWalk(step).walk(chat_input)

    async def _chat(self, step: ChatCompletionStep) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        uses: list[PromptUse] = []
        if step.prompt_id is not None:
            prompt = self.inp.prompts[step.prompt_id]
            content = render_content(prompt.content, step.prompt_variables)
            messages.append({"role": "system", "content": content})
            uses.append(PromptUse(prompt_id=prompt.prompt_id, version=prompt.version))
        elif step.system_message:
            messages.append({"role": "system", "content": step.system_message})
        if step.user_message:
            messages.append({"role": "user", "content": step.user_message})
        if not messages:
            raise InvalidRequestError("the chat step has no message", param="user_message")
        body: dict[str, Any] = {"messages": messages}
        if step.temperature is not None:
            body["temperature"] = step.temperature
        if step.max_tokens is not None:
            body["max_tokens"] = step.max_tokens
        result = await self.chat_call(step.name, step.model_id, body, uses)
        response = result.response
        return {
            "content": _reply_text(response),
            "response": response,
            "usage": response.get("usage"),
        }

    async def _search(self, step: KnowledgeBaseSearchStep) -> dict[str, Any]:
        pinned = self.inp.knowledge_bases[step.knowledge_base_id]
        call = KbSearchInput(
            caller=self.inp.caller,
            knowledge_base_id=step.knowledge_base_id,
            knowledge_base=pinned,
            query=step.query,
            top_k=step.top_k,
            similarity_threshold=step.similarity_threshold,
            filter=step.filter,
            request_id=self.inp.request_id,
        )
        found: dict[str, Any] = await workflow.execute_activity(
            KB_SEARCH_ACTIVITY,
            call,
            activity_id=self._next_id(step.name),
            summary=f"step {step.name}: search {step.knowledge_base_id}",
            start_to_close_timeout=SEARCH_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
            result_type=dict,
        )
        return found

    async def _crag(self, step: CragScoringStep) -> dict[str, Any]:
        thresholds = Thresholds.of(step.effective_correct_threshold(), step.ambiguous_threshold)
        judge = None
        if needs_judge(step.strategy):
            model_id = step.model_id or self.inp.judge_model
            if model_id is None:
                raise InvalidRequestError(
                    f"strategy {step.strategy!r} needs a judge model: set `model_id`"
                    " or PMP_CRAG_JUDGE_MODEL",
                    param="model_id",
                    code="judge_model_required",
                )
            prompt = JudgePrompt.default()
            if step.prompt_id is not None:
                stored = self.inp.prompts[step.prompt_id]
                prompt = JudgePrompt.stored(stored.prompt_id, stored.content)
            judge = JudgeSetup(judge=_StepJudge(self, step.name), model_id=model_id, prompt=prompt)
        result = await score_documents(
            step.query,
            _candidates(step.input_documents),
            strategy=step.strategy,
            thresholds=thresholds,
            judge=judge,
        )
        return result.model_dump(mode="json")

    async def _http(self, step: HttpRequestStep) -> dict[str, Any]:
        call = HttpRequestInput(
            method=step.method,
            url=step.url,
            headers=step.headers,
            body=step.body,
            credential=step.auth.model_dump(mode="json") if step.auth else None,
            timeout_s=step.timeout_s,
            workflow_id=self.inp.definition.id,
            workflow_version=self.inp.definition.version,
            step=step.name,
        )
        answered: dict[str, Any] = await workflow.execute_activity(
            HTTP_REQUEST_ACTIVITY,
            call,
            activity_id=self._next_id(step.name),
            summary=f"step {step.name}: {step.method} request",
            start_to_close_timeout=timedelta(seconds=step.timeout_s + 5),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
            result_type=dict,
        )
        return answered

    # --- steps that shape the walk --------------------------------------------------------

    async def _all(self, runs: list[Awaitable[T]]) -> list[T]:
        """Run concurrently; the first failure cancels the others and is raised."""
        tasks = [asyncio.ensure_future(run) for run in runs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _parallel(self, step: ParallelStep, scope: Scope) -> dict[str, Any]:
        names = list(step.branches)
        outputs = await self._all([self._walk(step.branches[name], scope) for name in names])
        return dict(zip(names, outputs, strict=True))

    async def _for_each(self, step: ForEachStep, scope: Scope) -> dict[str, Any]:
        items = resolve_value(step.items, scope, param="items")
        if not isinstance(items, list):
            raise InvalidRequestError("for_each `items` is not a list", param="items")
        if len(items) > step.max_items:
            raise InvalidRequestError(
                f"for_each got {len(items)} items; its max_items is {step.max_items}",
                param="max_items",
                code="too_many_items",
            )
        gate = asyncio.Semaphore(step.concurrency)

        async def one(index: int, item: Any) -> Any:
            async with gate:
                item_scope = scope.with_step(step.name, {"item": item, "index": index})
                return await self._walk(step.steps, item_scope)

        results = await self._all([one(index, item) for index, item in enumerate(items)])
        return {"results": results}

    async def _wait_for_input(self, step: WaitForInputStep) -> StepOutcome:
        """Pause until the input update delivers a valid value, or the timeout acts."""
        self._waiting[step.name] = WaitingStep(name=step.name, input_schema=step.input_schema)
        timeout = timedelta(seconds=step.timeout_s) if step.timeout_s else None
        try:
            await workflow.wait_condition(lambda: step.name in self._delivered, timeout=timeout)
        except TimeoutError:
            if step.on_timeout == "fail":
                raise UpstreamTimeoutError(
                    f"no input arrived within {step.timeout_s} s",
                    retryable=False,
                    code="input_timeout",
                ) from None
            return {"input": None}, step.on_timeout
        finally:
            self._waiting.pop(step.name, None)
        return {"input": self._delivered.pop(step.name)}, None
