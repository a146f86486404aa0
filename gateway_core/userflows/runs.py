"""A workflow run as it travels through Temporal: its pinned input, its steps, its result.

Everything a run reads is fixed when it starts: the definition version, the routes of the
models and chains its chat steps (and CRAG judges) call, the stored prompts they use, and
the caller's permissions (activities check them again). Editing a workflow, a model or a
prompt afterwards never changes a run in flight.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway_core.domain.api_keys import Permissions
from gateway_core.domain.chat import ChainStep
from gateway_core.domain.knowledge import KnowledgeBaseRef
from gateway_core.userflows.definition import WorkflowVersion

WORKFLOW_NAME = "UserWorkflow"
OPERATION_TYPE = "workflow.execution"
PROGRESS_QUERY = "progress"
INPUT_UPDATE = "deliver_input"
KB_SEARCH_ACTIVITY = "userflow_kb_search"
HTTP_REQUEST_ACTIVITY = "userflow_http_request"

StepStatus = Literal["completed", "skipped", "failed"]


class PinnedRoute(BaseModel):
    """What a model or chain id resolved to when the run started (ChatWorkflow's steps)."""

    steps: list[ChainStep]
    chain_id: str | None = None
    chain_version: int | None = None


class PinnedPrompt(BaseModel):
    """A stored prompt's content at the version current when the run started."""

    prompt_id: str
    version: int
    content: str


class PinnedKnowledgeBase(BaseModel):
    """A knowledge base as a search step reaches it (`ref.backend`) and its query embedder."""

    ref: KnowledgeBaseRef
    embedding: ChainStep


class RunCaller(BaseModel):
    """Who started the run: activities check these permissions again."""

    key_id: str
    permissions: Permissions


class UserWorkflowInput(BaseModel):
    """Everything UserWorkflow needs; nothing in it is a secret."""

    definition: WorkflowVersion
    input: dict[str, Any]
    caller: RunCaller
    routes: dict[str, PinnedRoute] = Field(default_factory=dict)
    prompts: dict[str, PinnedPrompt] = Field(default_factory=dict)
    knowledge_bases: dict[str, PinnedKnowledgeBase] = Field(default_factory=dict)
    judge_model: str | None = None  # PMP_CRAG_JUDGE_MODEL at start
    request_id: str | None = None


class StepRecord(BaseModel):
    """One step that ran: its outcome, output or error, and how long it took."""

    name: str
    status: StepStatus
    output: Any = None
    error: dict[str, Any] | None = None
    duration_ms: int = 0

    def answer(self) -> dict[str, Any]:
        """The step as the execute response lists it (`output` or `error`)."""
        shown: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.status == "completed":
            shown["output"] = self.output
        else:
            shown["error"] = self.error
        shown["duration_ms"] = self.duration_ms
        return shown


class UserWorkflowResult(BaseModel):
    """A completed run: the output (end_workflow's or the last step's) and every step."""

    workflow_id: str
    version: int
    output: Any = None
    steps: list[StepRecord] = Field(default_factory=list)

    def answer(self, run_id: str) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "version": self.version,
            "run_id": run_id,
            "status": "completed",
            "output": self.output,
            "steps": [step.answer() for step in self.steps],
        }


class WaitingStep(BaseModel):
    """A wait_for_input step that is paused now, and the schema its input must satisfy."""

    name: str
    input_schema: dict[str, Any] | None = None


class UserflowProgress(BaseModel):
    """The `progress` query: the steps running now, those done, and any paused for input."""

    workflow_id: str
    version: int
    current_steps: list[str] = Field(default_factory=list)
    steps_done: int = 0
    waiting_for_input: list[WaitingStep] = Field(default_factory=list)


class InputDelivery(BaseModel):
    """The value POST /v1/operations/{id}/input delivers to one paused step."""

    step: str
    value: Any = None


class KbSearchInput(BaseModel):
    """One knowledge_base_search step's call (placeholders already resolved)."""

    caller: RunCaller
    knowledge_base_id: str
    knowledge_base: PinnedKnowledgeBase
    query: str
    top_k: int
    similarity_threshold: float | None = None
    filter: Any = None
    request_id: str | None = None


class HttpRequestInput(BaseModel):
    """One http_request step's call; the credential is a reference, fetched at call time."""

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    credential: dict[str, Any] | None = None  # the step's HttpCredential, dumped
    timeout_s: float = 30
    # Which stored step this is: the worker sends a credential only where it says.
    workflow_id: str | None = None
    workflow_version: int | None = None
    step: str | None = None
