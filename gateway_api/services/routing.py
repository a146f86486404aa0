"""Resolves a requested `model` name to the chain of steps a run walks.

A chain id gives its steps (skipping models since removed or disabled); a model id is a
chain of one step with the default retry budget and latency limits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway_core.config import Settings
from gateway_core.domain.api_keys import ResourceKind
from gateway_core.domain.chains import ChainStepSpec, ModelChain
from gateway_core.domain.chat import ChainStep, ResolvedModel
from gateway_core.domain.models import Model, ModelKind
from gateway_core.errors import InvalidRequestError, ModelNotFoundError, ServiceUnavailableError
from gateway_core.storage.model_cache import TtlCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """What a requested name resolved to: the chain of steps a run walks."""

    requested: str
    steps: list[ChainStep]
    chain_id: str | None = None
    chain_version: int | None = None

    @property
    def permission_kind(self) -> ResourceKind:
        """Which permission list a key needs the requested name in."""
        return "chains" if self.chain_id else "models"


class Router:
    """Looks names up in the (briefly cached) chain and model definitions."""

    def __init__(
        self,
        settings: Settings,
        models: TtlCache[Model],
        chains: TtlCache[ModelChain | None],
    ) -> None:
        self._settings = settings
        self._models = models
        self._chains = chains

    async def resolve(self, name: str, kind: ModelKind = "chat") -> Route:
        """The route of `name`; a 400 when it names models of another kind than `kind`."""
        route = await self._route(name)
        check_kind(route, kind)
        return route

    async def _route(self, name: str) -> Route:
        chain = await self._chains.get(name)
        if chain is not None and chain.enabled:
            return await self._chain_route(chain)
        if chain is not None:
            raise ModelNotFoundError(f"The model `{name}` is disabled.", param="model")
        try:
            model = await self._models.get(name)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
            ) from None
        if not model.enabled:
            raise ModelNotFoundError(f"The model `{name}` is disabled.", param="model")
        step = ChainStep(
            model=resolved_model(model),
            max_retries=self._settings.default_max_retries,
            max_latency_ms=self._settings.default_timeout_ms,
            **self._stream_limits(),
        )
        return Route(name, [step])

    async def _chain_route(self, chain: ModelChain) -> Route:
        steps = [
            step
            for index, spec in enumerate(chain.steps)
            if (step := await self._chain_step(chain.id, index, spec)) is not None
        ]
        if not steps:
            raise ServiceUnavailableError(
                f"no model of chain `{chain.id}` is available", code="chain_unavailable"
            )
        return Route(chain.id, steps, chain.id, chain.version)

    async def _chain_step(self, chain_id: str, index: int, spec: ChainStepSpec) -> ChainStep | None:
        """The step for a stored spec; None (skipped) when its model was since removed."""
        try:
            model: Model | None = await self._models.get(spec.model_id)
        except ModelNotFoundError:
            model = None
        if model is None or not model.enabled:
            logger.warning(
                "chain step skipped: model unavailable",
                extra={"chain": chain_id, "step": index, "model": spec.model_id},
            )
            return None
        return ChainStep(
            model=resolved_model(model),
            max_retries=spec.max_retries,
            max_latency_ms=spec.max_latency_ms,
            max_time_to_first_token_ms=spec.max_time_to_first_token_ms,
            on_exhausted=spec.on_exhausted,
            **self._stream_limits(),
        )

    def _stream_limits(self) -> dict[str, int]:
        return {
            "max_stream_ms": int(self._settings.stream_max_duration_s * 1000),
            "heartbeat_timeout_ms": int(self._settings.stream_heartbeat_timeout_s * 1000),
        }


_KIND_USE = {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings"}


def check_kind(route: Route, kind: ModelKind) -> None:
    """Every step must be a `kind` model (of one vector size, for embeddings)."""
    for step in route.steps:
        if step.model.kind != kind:
            raise InvalidRequestError(
                f"`{step.model.id}` is {_article(step.model.kind)} {step.model.kind} model,"
                f" not {_article(kind)} {kind} model: use it with {_KIND_USE[step.model.kind]}",
                param="model",
                code="wrong_model_kind",
            )
    sizes = {step.model.dimensions for step in route.steps}
    if len(sizes) > 1:
        raise InvalidRequestError(
            f"chain `{route.requested}` mixes embedding models of different dimensions",
            param="model",
            code="wrong_model_kind",
        )


def _article(kind: str) -> str:
    return "an" if kind == "embedding" else "a"


def resolved_model(model: Model) -> ResolvedModel:
    """A stored model as a run records it: configuration and version, no secret."""
    return ResolvedModel(
        id=model.id,
        version=model.version,
        provider=model.provider,
        upstream_model=model.model,
        base_url=model.base_url,
        credential=model.credential,
        defaults=model.config,
        stream_usage=model.stream_usage,
        drop_unsupported_params=model.drop_unsupported_params,
        api_version=model.api_version,
        deployment=model.deployment,
        region=model.region,
        auth=model.auth,
        cache=model.cache,
        kind=model.kind,
        dimensions=model.dimensions,
    )
