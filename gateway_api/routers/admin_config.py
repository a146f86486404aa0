"""GET /admin/export and POST /admin/import: the whole configuration as one document."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from gateway_api.deps import AdminDep, RuntimeDep
from gateway_core.config_io import (
    ImportReport,
    dump_yaml,
    export_config,
    import_config,
    load_document,
    parse_config,
)

router = APIRouter(prefix="/admin", tags=["admin"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


@router.get("/export", response_model=None)
async def export(
    request: Request,
    runtime: RuntimeDep,
    _admin: AdminDep,
    format: Annotated[Literal["json", "yaml"] | None, Query()] = None,
) -> Response:
    """JSON, or YAML with `?format=yaml` or `Accept: application/yaml`."""
    document = await export_config(runtime.models, runtime.prompts, runtime.chains)
    accept = request.headers.get("accept", "")
    if format == "yaml" or (format is None and any(t in accept for t in YAML_TYPES)):
        return Response(dump_yaml(document), media_type="application/yaml")
    return JSONResponse(document)


@router.post("/import")
async def import_(
    request: Request,
    runtime: RuntimeDep,
    _admin: AdminDep,
    prune: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Apply a JSON or YAML document all or nothing; 400 lists every problem in it.

    A JSON content type is parsed as JSON, anything else as YAML (which reads JSON too).
    """
    json_only = "json" in request.headers.get("content-type", "")
    config = parse_config(load_document(await request.body(), json_only=json_only))
    report = await import_config(runtime.pool, config, prune=prune, dry_run=dry_run)
    runtime.model_cache.invalidate()
    runtime.prompt_cache.invalidate()
    runtime.chain_cache.invalidate()
    return report
