"""The Prompt entity: versioned template text that chat messages can reference by id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from gateway_core.domain.models import ResourceId
from gateway_core.domain.updates import ReadBackUpdate
from gateway_core.templating import VAR, parse_template, render_variables

MAX_CONTENT_CHARS = 200_000

Tag = Annotated[str, StringConstraints(pattern=r"^\w[\w.:/-]{0,49}$", max_length=50)]

# A variable's value as JSON carries it; numbers and booleans are rendered as JSON writes them.
VariableValue = str | int | float | bool


class PromptBase(BaseModel):
    """Fields an operator sets on a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str | None = Field(default=None, max_length=2000)
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS)]
    tags: list[Tag] = Field(default_factory=list, max_length=20)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


class PromptCreate(PromptBase):
    """Body of POST /admin/prompts."""

    id: ResourceId


class PromptUpdate(ReadBackUpdate, PromptBase):
    """Body of PUT /admin/prompts/{id}: the whole new definition."""

    # Derived from the content whenever it is saved.
    READ_ONLY_FIELDS = ReadBackUpdate.READ_ONLY_FIELDS | {"variables"}


class PromptVariable(BaseModel):
    """A variable the content uses; `required` when some use of it has no default."""

    model_config = ConfigDict(frozen=True)

    name: str
    default: str | None = None
    required: bool


class Prompt(PromptBase):
    """A stored prompt; `version` increases on every update and revert."""

    id: ResourceId
    version: int
    variables: list[PromptVariable]
    created_at: datetime
    updated_at: datetime


class PromptVersion(PromptBase):
    """One version of a prompt as it was written; `created_at` is when it was written."""

    id: ResourceId
    version: int
    variables: list[PromptVariable]
    created_at: datetime


class PromptUse(BaseModel):
    """Which prompt version a chat run rendered; recorded in the run's input."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    version: int


def prompt_variables(content: str) -> list[PromptVariable]:
    """The variables `content` uses, in order of first use; TemplateError if it is invalid."""
    found: dict[str, PromptVariable] = {}
    for placeholder in parse_template(content).placeholders(VAR):
        seen = found.get(placeholder.name)
        first_default = seen.default if seen is not None else None
        found[placeholder.name] = PromptVariable(
            name=placeholder.name,
            default=first_default if first_default is not None else placeholder.default,
            required=placeholder.default is None or (seen is not None and seen.required),
        )
    return list(found.values())


def variable_text(value: VariableValue) -> str:
    """A variable's value as it appears in rendered text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_content(content: str, variables: Mapping[str, VariableValue]) -> str:
    """Render stored content; MissingVariablesError names every variable left without value."""
    texts = {name: variable_text(value) for name, value in variables.items()}
    return render_variables(parse_template(content), texts)
