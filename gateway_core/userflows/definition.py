"""The workflow definition language: a workflow, its steps and the actions they take.

A definition is data: string fields named in a step's `TEMPLATED_FIELDS` may hold
`${request:...}` and `${step:...}` placeholders (gateway_core.userflows.variables), which
the interpreter resolves right before the step runs. Each step type declares the fields
of its output (`OUTPUT_FIELDS`); a `parallel` step's output has one field per branch.
Inside a `for_each` body, `${step:<for_each name>:item}` and `:index` name the current item.

The bodies an operator sends (WorkflowCreate, WorkflowUpdate) are checked as a whole when
they are parsed: every problem of a definition is reported in one 400
(gateway_core.userflows.validation); the stored forms (Workflow, WorkflowVersion) are not
re-checked when read, so a run can always load the version it pinned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    Tag,
    model_validator,
)

from gateway_core.domain.knowledge import MAX_TOP_K
from gateway_core.domain.models import CredentialRef, ResourceId
from gateway_core.domain.updates import ReadBackUpdate

StepName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
OnError = Literal["fail", "skip"]
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "is_empty", "is_not_empty", "contains"]
MAX_NESTING = 4  # parallel / for_each inside each other, at most this deep


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- actions ----------------------------------------------------------------------------


class GoToStep(_Strict):
    """Continue at the named step of the same step list (loops are bounded by max_steps)."""

    go_to_step: StepName


class EndWorkflow(_Strict):
    """Stop the walk; `end_workflow` (placeholders resolved) becomes its output."""

    end_workflow: Any


def _action_tag(value: Any) -> str | None:
    if value in ("continue", "fail") and isinstance(value, str):
        return value
    for tag, model in (("go_to_step", GoToStep), ("end_workflow", EndWorkflow)):
        if isinstance(value, model) or (isinstance(value, dict) and tag in value):
            return tag
    return None


_ACTIONS_TEXT = '"continue", {"go_to_step": name} or {"end_workflow": output}'
Action = Annotated[
    Annotated[Literal["continue"], Tag("continue")]
    | Annotated[GoToStep, Tag("go_to_step")]
    | Annotated[EndWorkflow, Tag("end_workflow")],
    Discriminator(
        _action_tag,
        custom_error_type="invalid_action",
        custom_error_message=f"an action is {_ACTIONS_TEXT}",
    ),
]
# What a wait_for_input step does on timeout: "fail", or an action.
TimeoutAction = Annotated[
    Annotated[Literal["fail"], Tag("fail")]
    | Annotated[Literal["continue"], Tag("continue")]
    | Annotated[GoToStep, Tag("go_to_step")]
    | Annotated[EndWorkflow, Tag("end_workflow")],
    Discriminator(
        _action_tag,
        custom_error_type="invalid_action",
        custom_error_message=f'on_timeout is "fail", {_ACTIONS_TEXT}',
    ),
]
ActionValue = Literal["continue"] | GoToStep | EndWorkflow
# The union members' tags pydantic puts into error locations (dropped from our paths).
ACTION_TAGS = frozenset({"fail", "continue", "go_to_step", "end_workflow"})


# --- steps ------------------------------------------------------------------------------


class StepBase(_Strict):
    """What every step has; subclasses set `type`, their fields and their output fields."""

    OUTPUT_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Fields whose values are resolved (placeholders, recursively in dicts and lists).
    TEMPLATED_FIELDS: ClassVar[tuple[str, ...]] = ()

    name: StepName
    on_error: OnError = "fail"

    def output_fields(self) -> frozenset[str]:
        """The fields `${step:<name>:<field>}` may read; `error` when failures are skipped."""
        return self.OUTPUT_FIELDS | ({"error"} if self.on_error == "skip" else set())


class ChatCompletionStep(StepBase):
    """A chat call to a model or a chain; a prompt, when named, is the system message."""

    OUTPUT_FIELDS = frozenset({"content", "response", "usage"})
    TEMPLATED_FIELDS = ("system_message", "user_message", "prompt_variables")

    type: Literal["chat_completion"]
    model_id: ResourceId
    prompt_id: ResourceId | None = None
    prompt_variables: dict[str, str] = Field(default_factory=dict)
    system_message: str | None = Field(default=None, max_length=200_000)
    user_message: str | None = Field(default=None, max_length=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)


class KnowledgeBaseSearchStep(StepBase):
    """A search of one knowledge base; `filter` is the metadata filter language."""

    OUTPUT_FIELDS = frozenset({"documents", "count"})
    TEMPLATED_FIELDS = ("query", "filter")

    type: Literal["knowledge_base_search"]
    knowledge_base_id: ResourceId
    query: str = Field(min_length=1, max_length=100_000)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    similarity_threshold: float | None = None
    filter: dict[str, Any] | None = None


class CragScoringStep(StepBase):
    """Corrective-RAG scoring of documents against the query (gateway_core.crag)."""

    OUTPUT_FIELDS = frozenset(
        {
            "correct_documents",
            "ambiguous_documents",
            "incorrect_documents",
            "summary",
            "action",
            "needs_correction",
            "should_try_web_search",
        }
    )
    TEMPLATED_FIELDS = ("input_documents", "query")

    type: Literal["crag_scoring"]
    input_documents: str | list[Any]
    query: str = Field(min_length=1, max_length=100_000)
    # `threshold` is the short name of `correct_threshold`; both at once is refused.
    threshold: float | None = Field(default=None, ge=0, le=1)
    correct_threshold: float | None = Field(default=None, ge=0, le=1)
    ambiguous_threshold: float | None = Field(default=None, ge=0, le=1)
    strategy: Literal["threshold", "llm", "hybrid"] = "threshold"
    prompt_id: ResourceId | None = None
    model_id: ResourceId | None = None  # the judge; PMP_CRAG_JUDGE_MODEL when unset

    @model_validator(mode="after")
    def _one_correct_threshold(self) -> CragScoringStep:
        if self.threshold is not None and self.correct_threshold is not None:
            raise ValueError("set `threshold` or `correct_threshold`, not both")
        return self

    def effective_correct_threshold(self) -> float | None:
        return self.correct_threshold if self.correct_threshold is not None else self.threshold


class Condition(_Strict):
    """`field` is one whole placeholder; `value` may hold placeholders too."""

    field: str = Field(min_length=1, max_length=1000)
    operator: Operator
    value: Any = None
    action: Action


class ConditionalStep(StepBase):
    """The first condition that holds chooses the action; none does: `default_action`."""

    OUTPUT_FIELDS = frozenset({"matched", "action"})
    TEMPLATED_FIELDS = ("conditions", "default_action")

    type: Literal["conditional"]
    conditions: list[Condition] = Field(min_length=1, max_length=50)
    default_action: Action = "continue"


class HttpCredential(_Strict):
    """A secret sent as a header, fetched at call time and never stored in a run."""

    credential: CredentialRef
    header: str = Field(default="Authorization", pattern=r"^[A-Za-z0-9-]{1,100}$")
    scheme: str | None = Field(default="Bearer", max_length=50)


class HttpRequestStep(StepBase):
    """An outbound HTTP call; the URL passes the same address checks as callbacks."""

    OUTPUT_FIELDS = frozenset({"status", "headers", "body"})
    TEMPLATED_FIELDS = ("url", "headers", "body")

    type: Literal["http_request"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    auth: HttpCredential | None = None
    timeout_s: float = Field(default=30, gt=0, le=300)


class WaitForInputStep(StepBase):
    """Pause until input arrives (valid against `input_schema`) or `timeout_s` passes."""

    OUTPUT_FIELDS = frozenset({"input"})

    type: Literal["wait_for_input"]
    input_schema: dict[str, Any] | None = None  # a JSON Schema, checked when saved
    timeout_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)
    # "fail" ends the run with an error; an action goes on (after "continue", `input` is null).
    on_timeout: TimeoutAction = "fail"


class ParallelStep(StepBase):
    """Named branches run concurrently; the output has one field per branch."""

    type: Literal["parallel"]
    branches: dict[StepName, list[Step]] = Field(min_length=1, max_length=20)

    def output_fields(self) -> frozenset[str]:
        return super().output_fields() | frozenset(self.branches)


class ForEachStep(StepBase):
    """`steps` once per item of `items` (a list), `concurrency` at a time, in order."""

    OUTPUT_FIELDS = frozenset({"results"})
    TEMPLATED_FIELDS = ("items",)
    # What the body's steps may read of the for_each step while it runs.
    ITEM_FIELDS: ClassVar[frozenset[str]] = frozenset({"item", "index"})

    type: Literal["for_each"]
    items: str | list[Any]
    steps: list[Step] = Field(min_length=1, max_length=50)
    max_items: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=4, ge=1, le=64)


Step = Annotated[
    ChatCompletionStep
    | KnowledgeBaseSearchStep
    | CragScoringStep
    | ConditionalStep
    | HttpRequestStep
    | WaitForInputStep
    | ParallelStep
    | ForEachStep,
    Field(discriminator="type"),
]
STEP_TYPES: dict[str, type[StepBase]] = {
    "chat_completion": ChatCompletionStep,
    "knowledge_base_search": KnowledgeBaseSearchStep,
    "crag_scoring": CragScoringStep,
    "conditional": ConditionalStep,
    "http_request": HttpRequestStep,
    "wait_for_input": WaitForInputStep,
    "parallel": ParallelStep,
    "for_each": ForEachStep,
}
ParallelStep.model_rebuild()
ForEachStep.model_rebuild()


def child_step_lists(step: StepBase) -> list[tuple[str, list[StepBase]]]:
    """The step lists nested in `step`, each with its path below the step."""
    if isinstance(step, ParallelStep):
        return [(f".branches.{name}", list(steps)) for name, steps in step.branches.items()]
    if isinstance(step, ForEachStep):
        return [(".steps", list(step.steps))]
    return []


def walk_steps(steps: Sequence[StepBase], path: str = "steps") -> Iterator[tuple[str, StepBase]]:
    """Every step, nested ones included, in document order, with its JSON path."""
    for index, step in enumerate(steps):
        step_path = f"{path}[{index}]"
        yield step_path, step
        for child_path, children in child_step_lists(step):
            yield from walk_steps(children, step_path + child_path)


# --- the workflow -----------------------------------------------------------------------


class WorkflowBase(_Strict):
    """Fields an operator sets on a workflow."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    # JSON Schema of the execution input, checked to be a valid schema when saved.
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    steps: list[Step] = Field(min_length=1, max_length=100)
    enabled: bool = True
    # How many steps one walk of a step list may start (bounds go_to_step loops).
    max_steps: int = Field(default=100, ge=1, le=10_000)


class _CheckedAsAWhole(BaseModel):
    """Parsing reports the definition's every problem at once, as one 400."""

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # Imported here: validation reads this module's step types (and imports jsonschema,
        # which the interpreter, reading only stored definitions, does not need).
        from gateway_core.userflows.validation import parse_checked

        return parse_checked(data, handler)


class WorkflowCreate(_CheckedAsAWhole, WorkflowBase):
    """Body of POST /admin/workflows."""

    id: ResourceId


class WorkflowUpdate(_CheckedAsAWhole, ReadBackUpdate, WorkflowBase):
    """Body of PUT /admin/workflows/{id}: the whole new definition."""


class Workflow(WorkflowBase):
    """A stored workflow; `version` increases on every update."""

    id: ResourceId
    version: int = 1
    created_at: datetime
    updated_at: datetime


class WorkflowVersion(WorkflowBase):
    """One version of a workflow as it was written; runs pin one of these."""

    id: ResourceId
    version: int
    created_at: datetime
