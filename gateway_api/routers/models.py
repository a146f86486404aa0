"""GET /v1/models and /v1/models/{id} in OpenAI's list format (enabled models only)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway_api.deps import CallerDep, RuntimeDep
from gateway_api.schemas import ModelCard, ModelList
from gateway_core.domain.models import Model
from gateway_core.errors import ModelNotFoundError

router = APIRouter(prefix="/v1", tags=["models"])


def _card(model: Model) -> ModelCard:
    return ModelCard(
        id=model.id, created=int(model.created_at.timestamp()), owned_by=model.provider
    )


@router.get("/models")
async def list_models(runtime: RuntimeDep, _caller: CallerDep) -> ModelList:
    return ModelList(data=[_card(m) for m in await runtime.models.list(enabled_only=True)])


@router.get("/models/{model_id}")
async def get_model(model_id: str, runtime: RuntimeDep, _caller: CallerDep) -> ModelCard:
    model = await runtime.models.get(model_id)
    if not model.enabled:
        raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")
    return _card(model)
