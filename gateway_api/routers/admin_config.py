"""GET /admin/export and POST /admin/import: the whole configuration as one document."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from gateway_api.deps import ConfigAdminDep
from gateway_core.config_io import ImportReport, dump_yaml

router = APIRouter(tags=["admin"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


@router.get("/export", response_model=None)
async def export(
    request: Request,
    config: ConfigAdminDep,
    format: Annotated[Literal["json", "yaml"] | None, Query()] = None,
) -> Response:
    """JSON, or YAML with `?format=yaml` or `Accept: application/yaml`."""
    document = await config.export()
    accept = request.headers.get("accept", "")
    if format == "yaml" or (format is None and any(t in accept for t in YAML_TYPES)):
        return Response(dump_yaml(document), media_type="application/yaml")
    return JSONResponse(document)


@router.post("/import")
async def import_(
    request: Request,
    config: ConfigAdminDep,
    prune: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Apply a JSON or YAML document all or nothing; 400 lists every problem in it.

    A JSON content type is parsed as JSON, anything else as YAML (which reads JSON too).
    """
    json_only = "json" in request.headers.get("content-type", "")
    return await config.import_document(
        await request.body(), json_only=json_only, prune=prune, dry_run=dry_run
    )
