"""Running user-defined workflows: execute one, and answer a paused run's input request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gateway_api.deps import CallerDep, WorkflowRunsDep
from gateway_api.responses import to_response
from gateway_core.domain.operations import OperationDoc

router = APIRouter(tags=["workflows"])


class ExecuteBody(BaseModel):
    """The execution input, checked against the workflow's `input_schema`."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict)


class InputBody(BaseModel):
    """The value for a paused wait_for_input step (`step` when several wait)."""

    model_config = ConfigDict(extra="forbid")

    input: Any = None
    step: str | None = Field(default=None, min_length=1, max_length=64)


@router.post("/v1/workflows/{workflow_id}/execute")
async def execute(
    workflow_id: str,
    body: ExecuteBody,
    runs: WorkflowRunsDep,
    caller: CallerDep,
    run_async: Annotated[bool, Query(alias="async")] = False,
) -> Response:
    """The run's output and steps; with `?async=true`, 202 and its operation."""
    answer = await runs.execute(caller, workflow_id, body.input, run_async=run_async)
    return to_response(answer)


@router.post("/v1/operations/{operation_id}/input", response_model_exclude_none=True)
async def deliver_input(
    operation_id: str, body: InputBody, runs: WorkflowRunsDep, caller: CallerDep
) -> OperationDoc:
    """Resume a run paused at a wait_for_input step with this value."""
    return await runs.deliver_input(caller, operation_id, body.input, body.step)
