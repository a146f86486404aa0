"""Chain repository: chains with versions, validated against the models they name."""

from __future__ import annotations

import builtins

from gateway_core.domain.chains import (
    ChainBase,
    ChainCreate,
    ChainUpdate,
    ChainVersion,
    ModelChain,
)
from gateway_core.errors import InvalidRequestError, NotFoundError
from gateway_core.storage.database import Connection, ConnectionSource
from gateway_core.storage.versioned import VersionedRepository, VersionedSpec


class ChainNotFoundError(NotFoundError):
    default_code = "chain_not_found"


async def _check_models(conn: Connection, chain: ChainBase) -> None:
    """Every step must name an existing, enabled model; all problems are reported at once."""
    ids = [step.model_id for step in chain.steps]
    cursor = await conn.execute(
        "SELECT id, (definition->>'enabled')::boolean AS enabled,"
        " coalesce(definition->>'kind', 'chat') AS kind, definition->>'dimensions' AS dimensions"
        " FROM models WHERE id = ANY(%s)",
        (ids,),
    )
    rows = await cursor.fetchall()
    enabled = {row["id"]: row["enabled"] for row in rows}
    _check_one_kind([(row["kind"], row["dimensions"]) for row in rows])
    problems = []
    first_param = None
    for index, model_id in enumerate(ids):
        if model_id not in enabled:
            problems.append(f"steps[{index}].model_id: model {model_id!r} does not exist")
        elif not enabled[model_id]:
            problems.append(f"steps[{index}].model_id: model {model_id!r} is disabled")
        else:
            continue
        first_param = first_param or f"steps[{index}].model_id"
    if problems:
        raise InvalidRequestError("; ".join(problems), param=first_param, code="invalid_model")


def _check_one_kind(kinds: list[tuple[str, str | None]]) -> None:
    """A chain walks models of one kind: chat, or embeddings of one vector size."""
    if len({kind for kind, _ in kinds}) > 1:
        raise InvalidRequestError(
            "a chain's steps must all be chat models or all embedding models",
            param="steps",
            code="wrong_model_kind",
        )
    if len({dimensions for _, dimensions in kinds}) > 1:
        raise InvalidRequestError(
            "a chain's embedding models must all have the same dimensions",
            param="steps",
            code="wrong_model_kind",
        )


CHAINS = VersionedSpec(
    kind="chain",
    table="chains",
    versions_table="chain_versions",
    key_column="chain_id",
    entity_model=ModelChain,
    version_model=ChainVersion,
    create_model=ChainCreate,
    update_model=ChainUpdate,
    not_found_error=ChainNotFoundError,
    not_found_param="id",
    check=_check_models,
    routable=True,
)


class ChainRepository(VersionedRepository[ModelChain, ChainVersion, ChainCreate, ChainUpdate]):
    """Stores ModelChain definitions as JSON documents keyed by id.

    `find` answers None for a missing chain: the chat route then looks for a model.
    """

    def __init__(self, pool: ConnectionSource) -> None:
        super().__init__(pool, CHAINS)

    async def list(self) -> builtins.list[ModelChain]:
        """All chains ordered by id."""
        return await self.list_all()
