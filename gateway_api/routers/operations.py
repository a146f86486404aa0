"""Async operations: /v1/operations (list, get several, get one, cancel)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gateway_api.deps import CallerDep, OperationsDep
from gateway_core.domain.operations import OperationDoc
from gateway_core.errors import InvalidRequestError

router = APIRouter(prefix="/v1/operations", tags=["operations"])

StatusFilter = Literal["pending", "running", "completed", "failed", "cancelled"]


@router.get("")
async def operations(
    service: OperationsDep,
    caller: CallerDep,
    ids: str | None = None,
    status: StatusFilter | None = None,
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict[str, object]:
    """`?ids=a,b,c` answers those operations; otherwise the caller's own, newest first."""
    if ids is not None:
        wanted = [part.strip() for part in ids.split(",") if part.strip()]
        if not wanted or len(wanted) > 100:
            raise InvalidRequestError("ids takes 1 to 100 operation ids", param="ids")
        documents, missing = await service.describe_many(caller, wanted)
        found = [document.model_dump(exclude_none=True) for document in documents]
        return {"object": "list", "data": found, "not_found": missing}
    documents, cursor = await service.list(
        caller, status=status, operation_type=type, limit=limit, after=after
    )
    return {
        "object": "list",
        "data": [d.model_dump(exclude_none=True) for d in documents],
        "has_more": cursor is not None,
        "next_after": cursor,
    }


@router.get("/{operation_id}", response_model_exclude_none=True)
async def operation(operation_id: str, service: OperationsDep, caller: CallerDep) -> OperationDoc:
    return await service.describe(caller, operation_id)


@router.delete("/{operation_id}", response_model_exclude_none=True)
async def cancel(operation_id: str, service: OperationsDep, caller: CallerDep) -> OperationDoc:
    return await service.cancel(caller, operation_id)
