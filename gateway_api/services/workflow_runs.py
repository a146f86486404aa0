"""Executing user-defined workflows: `POST /v1/workflows/{id}/execute` and the input of a
paused run (`POST /v1/operations/{id}/input`).

A run starts only once everything it will use is checked and pinned: the key's
`workflows` permission, the workflow enabled, the input valid against its schema, and
every model, chain, knowledge base and prompt its steps name resolved and allowed for the
key. The run (UserWorkflow) then never reads a definition again.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway_api.services.answers import JsonAnswer
from gateway_api.services.knowledge import kb_ref, usable_knowledge_base
from gateway_api.services.operations import (
    OperationsService,
    operation_attributes,
    pending_document,
)
from gateway_api.services.routing import Router
from gateway_api.services.run_client import RunClient, RunOptions
from gateway_core.auth.service import Caller
from gateway_core.crag import needs_judge
from gateway_core.domain.operations import OperationDoc, new_operation_id
from gateway_core.domain.prompts import Prompt
from gateway_core.errors import ConflictError, GatewayError, InvalidRequestError
from gateway_core.logging import request_id_var
from gateway_core.storage.knowledge_bases import KnowledgeBaseRepository
from gateway_core.storage.model_cache import TtlCache
from gateway_core.storage.workflows import WorkflowRepository
from gateway_core.userflows.definition import (
    ChatCompletionStep,
    CragScoringStep,
    KnowledgeBaseSearchStep,
    Workflow,
    WorkflowVersion,
    walk_steps,
)
from gateway_core.userflows.runs import (
    INPUT_UPDATE,
    OPERATION_TYPE,
    PROGRESS_QUERY,
    WORKFLOW_NAME,
    InputDelivery,
    PinnedKnowledgeBase,
    PinnedPrompt,
    PinnedRoute,
    RunCaller,
    UserflowProgress,
    UserWorkflowInput,
    UserWorkflowResult,
    WaitingStep,
)
from gateway_core.userflows.validation import check_input

SYNC_RUN_PREFIX = "wf-"


class _Pins:
    """What a run's steps use, resolved and checked for the caller as they are found."""

    def __init__(self) -> None:
        self.routes: dict[str, PinnedRoute] = {}
        self.prompts: dict[str, PinnedPrompt] = {}
        self.knowledge_bases: dict[str, PinnedKnowledgeBase] = {}


class WorkflowRunsService:
    """Starts workflow runs (sync or as operations) and delivers input to paused ones."""

    def __init__(
        self,
        *,
        workflows: WorkflowRepository,
        router: Router,
        prompts: TtlCache[Prompt],
        knowledge_bases: KnowledgeBaseRepository,
        runs: RunClient,
        operations: OperationsService,
        judge_model: str | None,
    ) -> None:
        self._workflows = workflows
        self._router = router
        self._prompts = prompts
        self._knowledge_bases = knowledge_bases
        self._runs = runs
        self._operations = operations
        self._judge_model = judge_model

    async def execute(
        self, caller: Caller, workflow_id: str, execution_input: dict[str, Any], *, run_async: bool
    ) -> JsonAnswer:
        """The run's answer (sync), or 202 with its operation (async)."""
        caller.require("workflows", workflow_id)
        workflow = await self._workflows.get(workflow_id)
        if not workflow.enabled:
            raise ConflictError(f"workflow {workflow_id!r} is disabled", code="workflow_disabled")
        check_input(workflow.input_schema, execution_input)
        run_input = await self._run_input(caller, workflow, execution_input)
        run_id = new_operation_id() if run_async else f"{SYNC_RUN_PREFIX}{uuid.uuid4().hex}"
        options = None
        if run_async:
            options = RunOptions(
                search_attributes=operation_attributes(caller.key_id, OPERATION_TYPE)
            )
        handle = await self._runs.start(
            WORKFLOW_NAME, run_input, run_id=run_id, result_type=UserWorkflowResult, options=options
        )
        headers = {"x-pmp-run-id": run_id}
        if (url := self._runs.run_url(run_id)) is not None:
            headers["x-pmp-run-url"] = url
        if run_async:
            document = pending_document(run_id, OPERATION_TYPE)
            headers["location"] = f"/v1/operations/{run_id}"
            return JsonAnswer(document.model_dump(exclude_none=True), headers, status=202)
        try:
            result = await self._runs.result(handle)
        except GatewayError as error:
            error.headers["x-pmp-run-id"] = run_id
            raise
        return JsonAnswer(result.answer(run_id), headers)

    async def _run_input(
        self, caller: Caller, workflow: Workflow, execution_input: dict[str, Any]
    ) -> UserWorkflowInput:
        definition = WorkflowVersion.model_validate(workflow.model_dump(exclude={"updated_at"}))
        pins = _Pins()
        for path, step in walk_steps(definition.steps):
            if isinstance(step, ChatCompletionStep):
                await self._pin_route(caller, pins, step.model_id, f"{path}.model_id")
                if step.prompt_id is not None:
                    await self._pin_prompt(caller, pins, step.prompt_id)
            elif isinstance(step, CragScoringStep) and needs_judge(step.strategy):
                await self._pin_judge(caller, pins, step, path)
            elif isinstance(step, KnowledgeBaseSearchStep):
                await self._pin_knowledge_base(caller, pins, step.knowledge_base_id)
        return UserWorkflowInput(
            definition=definition,
            input=execution_input,
            caller=RunCaller(key_id=caller.key_id, permissions=caller.permissions),
            routes=pins.routes,
            prompts=pins.prompts,
            knowledge_bases=pins.knowledge_bases,
            judge_model=self._judge_model,
            request_id=request_id_var.get(),
        )

    async def _pin_route(self, caller: Caller, pins: _Pins, model_id: str, param: str) -> None:
        if model_id in pins.routes:
            return
        route = await self._router.resolve(model_id)
        caller.require(route.permission_kind, model_id)
        pins.routes[model_id] = PinnedRoute(
            steps=route.steps, chain_id=route.chain_id, chain_version=route.chain_version
        )

    async def _pin_judge(
        self, caller: Caller, pins: _Pins, step: CragScoringStep, path: str
    ) -> None:
        model_id = step.model_id or self._judge_model
        if model_id is None:
            raise InvalidRequestError(
                f"{path}: strategy {step.strategy!r} needs a judge model: set `model_id`"
                " on the step, or PMP_CRAG_JUDGE_MODEL on the gateway",
                param=f"{path}.model_id",
                code="judge_model_required",
            )
        await self._pin_route(caller, pins, model_id, f"{path}.model_id")
        if step.prompt_id is not None:
            await self._pin_prompt(caller, pins, step.prompt_id)

    async def _pin_prompt(self, caller: Caller, pins: _Pins, prompt_id: str) -> None:
        caller.require("prompts", prompt_id)
        if prompt_id not in pins.prompts:
            stored = await self._prompts.get(prompt_id)
            pins.prompts[prompt_id] = PinnedPrompt(
                prompt_id=stored.id, version=stored.version, content=stored.content
            )

    async def _pin_knowledge_base(self, caller: Caller, pins: _Pins, kb_id: str) -> None:
        caller.require("knowledge_bases", kb_id)
        if kb_id in pins.knowledge_bases:
            return
        kb = await usable_knowledge_base(self._knowledge_bases, kb_id)
        embedding = await self._router.resolve(kb.embedding_model_id, kind="embedding")
        pins.knowledge_bases[kb_id] = PinnedKnowledgeBase(
            ref=await kb_ref(self._knowledge_bases, kb), embedding=embedding.steps[0]
        )

    # --- input to a paused run --------------------------------------------------------

    async def deliver_input(
        self, caller: Caller, operation_id: str, value: Any, step: str | None
    ) -> OperationDoc:
        """Hand `value` to the run's paused wait_for_input step; 400 if it does not fit
        the step's schema, 409 when no step waits."""
        document = await self._operations.describe(caller, operation_id)
        if document.type != OPERATION_TYPE or document.status not in ("pending", "running"):
            raise _not_waiting(operation_id)
        waiting = _waiting_step(await self._progress(operation_id), step, operation_id)
        check_input(waiting.input_schema or True, value)
        delivery = InputDelivery(step=waiting.name, value=value)
        await self._runs.update(operation_id, INPUT_UPDATE, delivery)
        return await self._operations.describe(caller, operation_id)

    async def _progress(self, operation_id: str) -> UserflowProgress:
        progress = await self._runs.query(operation_id, PROGRESS_QUERY, UserflowProgress)
        if progress is None:
            raise _not_waiting(operation_id)
        return progress


def _not_waiting(operation_id: str) -> ConflictError:
    return ConflictError(
        f"operation {operation_id!r} is not waiting for input", code="not_waiting_for_input"
    )


def _waiting_step(progress: UserflowProgress, step: str | None, operation_id: str) -> WaitingStep:
    """The paused step the input is for: the named one, or the only one."""
    if step is not None:
        for waiting in progress.waiting_for_input:
            if waiting.name == step:
                return waiting
        raise _not_waiting(operation_id)
    if not progress.waiting_for_input:
        raise _not_waiting(operation_id)
    if len(progress.waiting_for_input) > 1:
        names = ", ".join(w.name for w in progress.waiting_for_input)
        raise InvalidRequestError(
            f"several steps wait for input ({names}): name one in `step`", param="step"
        )
    return progress.waiting_for_input[0]
