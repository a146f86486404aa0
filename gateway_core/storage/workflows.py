"""Workflow repository: versioned definitions, checked against what their steps name.

Parsing the body already checked the definition as a whole
(gateway_core.userflows.validation); inside the write's transaction this adds whether
the models (or chains), knowledge bases and prompts its steps name exist, every missing
one reported in one 400.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gateway_core.errors import NotFoundError
from gateway_core.storage.database import Connection, ConnectionSource
from gateway_core.storage.versioned import VersionedRepository, VersionedSpec
from gateway_core.userflows.definition import (
    ChatCompletionStep,
    CragScoringStep,
    KnowledgeBaseSearchStep,
    StepBase,
    Workflow,
    WorkflowBase,
    WorkflowCreate,
    WorkflowUpdate,
    WorkflowVersion,
    walk_steps,
)
from gateway_core.userflows.validation import Problem, WorkflowDefinitionError


class WorkflowNotFoundError(NotFoundError):
    default_code = "workflow_not_found"


@dataclass
class _Named:
    """The ids a definition names, each with the JSON paths that name it."""

    models: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    knowledge_bases: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    prompts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add_step(self, path: str, step: StepBase) -> None:
        if isinstance(step, ChatCompletionStep | CragScoringStep):
            if step.model_id is not None:
                self.models[step.model_id].append(f"{path}.model_id")
            if step.prompt_id is not None:
                self.prompts[step.prompt_id].append(f"{path}.prompt_id")
        if isinstance(step, KnowledgeBaseSearchStep):
            self.knowledge_bases[step.knowledge_base_id].append(f"{path}.knowledge_base_id")


async def _existing(conn: Connection, query: str, ids: list[str]) -> dict[str, str]:
    """`query` (selecting id and kind) over `ids`: each found id's kind."""
    cursor = await conn.execute(query, (ids,))
    return {row["id"]: row["kind"] for row in await cursor.fetchall()}


_CHAT_TARGETS = (
    "SELECT id, coalesce(definition->>'kind', 'chat') AS kind FROM models WHERE id = ANY(%s)"
    " UNION ALL SELECT id, 'chain' AS kind FROM chains WHERE id = ANY(%s)"
)


def _model_problem(model_id: str, kind: str | None) -> str | None:
    if kind is None:
        return f"model {model_id!r} does not exist (no model or chain has this id)"
    if kind == "embedding":
        return f"model {model_id!r} is an embedding model, not a chat model"
    return None


async def _check_references(conn: Connection, workflow: WorkflowBase) -> None:
    """Every model or chain, knowledge base and prompt a step names must exist."""
    named = _Named()
    for path, step in walk_steps(workflow.steps):
        named.add_step(path, step)
    cursor = await conn.execute(_CHAT_TARGETS, (list(named.models), list(named.models)))
    model_kinds = {row["id"]: row["kind"] for row in await cursor.fetchall()}
    kb_ids = await _existing(
        conn,
        "SELECT id, 'kb' AS kind FROM knowledge_bases WHERE id = ANY(%s)",
        list(named.knowledge_bases),
    )
    prompt_ids = await _existing(
        conn, "SELECT id, 'prompt' AS kind FROM prompts WHERE id = ANY(%s)", list(named.prompts)
    )
    problems: list[Problem] = []
    for model_id, paths in named.models.items():
        reason = _model_problem(model_id, model_kinds.get(model_id))
        problems.extend(Problem(path, reason) for path in paths if reason)
    for kb_id, paths in named.knowledge_bases.items():
        if kb_id not in kb_ids:
            reason = f"knowledge base {kb_id!r} does not exist"
            problems.extend(Problem(path, reason) for path in paths)
    for prompt_id, paths in named.prompts.items():
        if prompt_id not in prompt_ids:
            reason = f"prompt {prompt_id!r} does not exist"
            problems.extend(Problem(path, reason) for path in paths)
    if problems:
        raise WorkflowDefinitionError(problems)


WORKFLOWS = VersionedSpec(
    kind="workflow",
    table="workflows",
    versions_table="workflow_versions",
    key_column="workflow_id",
    entity_model=Workflow,
    version_model=WorkflowVersion,
    create_model=WorkflowCreate,
    update_model=WorkflowUpdate,
    not_found_error=WorkflowNotFoundError,
    not_found_param="workflow_id",
    check=_check_references,
)


class WorkflowRepository(
    VersionedRepository[Workflow, WorkflowVersion, WorkflowCreate, WorkflowUpdate]
):
    """Stores workflow definitions as JSON documents keyed by id."""

    def __init__(self, pool: ConnectionSource) -> None:
        super().__init__(pool, WORKFLOWS)
