"""OpenAI wire schemas the gateway validates; unknown fields pass through untouched."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway_core.domain.embeddings import EmbeddingInput
from gateway_core.domain.models import MAX_DIMENSIONS
from gateway_core.domain.prompts import VariableValue


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatMessage(BaseModel):
    """A message; instead of `content` it may reference a stored prompt to render."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    prompt_id: str | None = Field(default=None, min_length=1, max_length=50)
    prompt_version: int | None = Field(default=None, ge=1)
    variables: dict[str, VariableValue] | None = None

    @model_validator(mode="after")
    def _content_or_prompt(self) -> Self:
        if self.prompt_id is None:
            if self.prompt_version is not None or self.variables is not None:
                raise ValueError("prompt_version and variables need a prompt_id")
        elif self.content is not None:
            raise ValueError("a message has either content or a prompt_id, not both")
        return self


class CacheRequest(BaseModel):
    """The request's `cache` object: per-request cache control (a gateway extension)."""

    model_config = ConfigDict(extra="forbid")

    ttl: int | None = Field(default=None, ge=1)
    no_cache: bool = False
    no_store: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions: fields the gateway reads; the rest are forwarded as-is."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int | None = Field(default=None, ge=1, le=128)
    # Gateway extension for `?async=true`: where to POST the operation when it ends.
    callback_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
    # Gateway extension: per-request response-cache control, never sent upstream.
    cache: CacheRequest | None = None

    def upstream_body(self) -> dict[str, Any]:
        """The body for the provider: everything the caller sent except routing fields."""
        return self.model_dump(
            exclude_unset=True, exclude={"model", "stream", "callback_url", "cache"}
        )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class DeletedModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


class VersionRef(BaseModel):
    """Body of POST /admin/{models,prompts}/{id}/revert: the version to make current."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class RenderRequest(BaseModel):
    """Body of POST /admin/prompts/{id}/render; `version` defaults to the current one."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, VariableValue] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1)


class RenderedPrompt(BaseModel):
    prompt_id: str
    version: int
    content: str


TokenIds = list[Annotated[int, Field(ge=0)]]


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings: OpenAI's fields; others (`user`, `input_type`) are forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    # A text, texts, the token ids of one text, or token ids of several (as OpenAI takes).
    input: str | list[str] | TokenIds | list[TokenIds]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not items or any(len(item) == 0 for item in items if not isinstance(item, int)):
            raise ValueError("input must not be empty, nor hold an empty string or token list")
        return value

    def inputs(self) -> list[EmbeddingInput]:
        """The inputs as a list: texts, or token-id lists."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [[int(token) for token in self.input]]
        return list(self.input)  # type: ignore[arg-type]

    def passthrough(self) -> dict[str, Any]:
        """Fields the gateway does not read, for the provider."""
        return dict(self.model_extra or {})
