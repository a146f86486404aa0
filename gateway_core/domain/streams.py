"""Stream events: what a streaming run sends from the activity to the API's SSE relay.

A run publishes chunk events, then an end event, or an error event when it fails; the
relay itself makes a result event when the chunks never reached it (another process's
bus) and it answers from the run's result instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gateway_core.domain.failures import FailurePayload


class ChunkEvent(BaseModel):
    """One upstream chunk (OpenAI chunk format) and which attempt of which step sent it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["chunk"] = "chunk"
    attempt: int
    served_by: str
    step: int
    prior_attempts: int
    data: dict[str, Any]


class EndEvent(BaseModel):
    """The stream finished: every chunk has been published."""

    model_config = ConfigDict(frozen=True)

    type: Literal["end"] = "end"


class ErrorEvent(BaseModel):
    """The stream failed for good; no more chunks follow."""

    model_config = ConfigDict(frozen=True)

    type: Literal["error"] = "error"
    error: FailurePayload


class ResultEvent(BaseModel):
    """The run's whole answer, relayed when its chunks never arrived (made by the relay)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["result"] = "result"
    data: dict[str, Any]


StreamEvent = Annotated[
    ChunkEvent | EndEvent | ErrorEvent | ResultEvent, Field(discriminator="type")
]
STREAM_EVENT: TypeAdapter[ChunkEvent | EndEvent | ErrorEvent | ResultEvent] = TypeAdapter(
    StreamEvent
)
