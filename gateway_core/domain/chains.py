"""The ModelChain entity: one name that walks several models in order."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway_core.domain.models import ResourceId
from gateway_core.domain.updates import ReadBackUpdate


class ChainStepSpec(BaseModel):
    """One step as an operator writes it: a model and its budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: ResourceId
    max_retries: int = Field(default=2, ge=0, le=10)
    max_latency_ms: int = Field(default=60_000, gt=0, le=3_600_000)
    max_time_to_first_token_ms: int | None = Field(default=None, gt=0, le=3_600_000)
    on_exhausted: Literal["next", "fail"] = "next"


class ChainBase(BaseModel):
    """Fields an operator sets on a chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[ChainStepSpec] = Field(min_length=1, max_length=10)
    enabled: bool = True


class ChainCreate(ChainBase):
    """Body of POST /admin/chains."""

    id: ResourceId


class ChainUpdate(ReadBackUpdate, ChainBase):
    """Body of PUT /admin/chains/{id}: the whole new definition."""


class ModelChain(ChainBase):
    """A stored chain; `version` increases on every update."""

    id: ResourceId
    version: int = 1
    created_at: datetime
    updated_at: datetime


class ChainVersion(ChainBase):
    """One version of a chain as it was written; `created_at` is when it was written."""

    id: ResourceId
    version: int
    created_at: datetime
