"""GET /v1/models and /v1/models/{id} in OpenAI's list format (enabled models only)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway_api.deps import CallerDep, StorageDep
from gateway_api.schemas import ModelCard, ModelList
from gateway_core.domain.chains import ModelChain
from gateway_core.domain.models import Model
from gateway_core.errors import ModelNotFoundError

router = APIRouter(prefix="/v1", tags=["models"])


def _card(model: Model) -> ModelCard:
    return ModelCard(
        id=model.id, created=int(model.created_at.timestamp()), owned_by=model.provider
    )


def _chain_card(chain: ModelChain) -> ModelCard:
    return ModelCard(id=chain.id, created=int(chain.created_at.timestamp()), owned_by="pmp-chain")


@router.get("/models")
async def list_models(storage: StorageDep, caller: CallerDep) -> ModelList:
    """Every name `model` may take with this key: enabled models and chains it may use."""
    permissions = caller.permissions
    cards = [
        _card(m)
        for m in await storage.models.list(enabled_only=True)
        if permissions.allows("models", m.id)
    ]
    cards += [
        _chain_card(c)
        for c in await storage.chains.list()
        if c.enabled and permissions.allows("chains", c.id)
    ]
    return ModelList(data=sorted(cards, key=lambda card: card.id))


@router.get("/models/{model_id}")
async def get_model(model_id: str, storage: StorageDep, caller: CallerDep) -> ModelCard:
    chain = await storage.chains.find(model_id)
    if chain is not None and chain.enabled:
        caller.require("chains", model_id)
        return _chain_card(chain)
    model = await storage.models.get(model_id)
    if not model.enabled:
        raise ModelNotFoundError(f"model {model_id!r} does not exist", param="model")
    caller.require("models", model_id)
    return _card(model)
