"""Dependencies: the caller's identity and the one group or service a handler needs.

Each is a one-line `Annotated` alias; handlers never receive the whole runtime.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway_api.assembly.groups import Runtime, StorageGroup
from gateway_api.assembly.services import Services
from gateway_api.services.api_keys import ApiKeyAdmin
from gateway_api.services.cache_policy import ResponseCacheService
from gateway_api.services.chat import ChatService
from gateway_api.services.codec import CodecService
from gateway_api.services.config_admin import ConfigAdmin
from gateway_api.services.crag import CragService
from gateway_api.services.credentials import CredentialProviders
from gateway_api.services.embeddings import EmbeddingService
from gateway_api.services.entities import EntityServices
from gateway_api.services.ingestion import IngestionService
from gateway_api.services.knowledge import KnowledgeService
from gateway_api.services.model_health import ModelHealth
from gateway_api.services.operations import OperationsService
from gateway_api.services.readiness import Readiness
from gateway_api.services.workflow_runs import WorkflowRunsService
from gateway_core.auth.service import Caller
from gateway_core.errors import AuthenticationError, InvalidRequestError
from gateway_core.metrics import GatewayMetrics


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Providers are `async def` although they do not await: FastAPI runs a plain `def`
# dependency on a worker thread, a thread hop per dependency per request.


async def all_services(request: Request) -> Services:
    return _services(request)


async def storage(request: Request) -> StorageGroup:
    return _runtime(request).storage


async def cache_service(request: Request) -> ResponseCacheService:
    return _services(request).cache


async def metrics_registry(request: Request) -> GatewayMetrics:
    """The process's metrics; with PMP_METRICS_KEY set, only for a caller presenting it."""
    runtime = _runtime(request)
    expected = runtime.settings.metrics_key
    if expected is not None:
        presented = presented_key(request)
        if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
            raise AuthenticationError("wrong metrics key", code="invalid_metrics_key")
    return runtime.providers.metrics


async def readiness(request: Request) -> Readiness:
    return _services(request).readiness


async def chat_service(request: Request) -> ChatService:
    return _services(request).chat


async def embedding_service(request: Request) -> EmbeddingService:
    return _services(request).embeddings


async def operations_service(request: Request) -> OperationsService:
    return _services(request).operations


async def entity_services(request: Request) -> EntityServices:
    return _services(request).entities


async def api_keys_service(request: Request) -> ApiKeyAdmin:
    return _services(request).api_keys


async def config_admin(request: Request) -> ConfigAdmin:
    return _services(request).config


async def model_health(request: Request) -> ModelHealth:
    return _services(request).model_health


async def credential_providers(request: Request) -> CredentialProviders:
    return _services(request).credentials


async def knowledge_service(request: Request) -> KnowledgeService:
    return _services(request).knowledge


async def ingestion_service(request: Request) -> IngestionService:
    return _services(request).ingestion


async def crag_service(request: Request) -> CragService:
    return _services(request).crag


async def workflow_runs_service(request: Request) -> WorkflowRunsService:
    return _services(request).workflow_runs


async def codec_service(request: Request) -> CodecService:
    return _services(request).codec


StorageDep = Annotated[StorageGroup, Depends(storage)]
CacheDep = Annotated[ResponseCacheService, Depends(cache_service)]
MetricsDep = Annotated[GatewayMetrics, Depends(metrics_registry)]
ReadinessDep = Annotated[Readiness, Depends(readiness)]
ChatDep = Annotated[ChatService, Depends(chat_service)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(embedding_service)]
OperationsDep = Annotated[OperationsService, Depends(operations_service)]
EntitiesDep = Annotated[EntityServices, Depends(entity_services)]
ApiKeysDep = Annotated[ApiKeyAdmin, Depends(api_keys_service)]
ConfigAdminDep = Annotated[ConfigAdmin, Depends(config_admin)]
ModelHealthDep = Annotated[ModelHealth, Depends(model_health)]
CredentialsDep = Annotated[CredentialProviders, Depends(credential_providers)]
KnowledgeDep = Annotated[KnowledgeService, Depends(knowledge_service)]
IngestionDep = Annotated[IngestionService, Depends(ingestion_service)]
CragDep = Annotated[CragService, Depends(crag_service)]
WorkflowRunsDep = Annotated[WorkflowRunsService, Depends(workflow_runs_service)]
CodecDep = Annotated[CodecService, Depends(codec_service)]
ServicesDep = Annotated[Services, Depends(all_services)]


def presented_key(request: Request) -> str:
    """The key from `Authorization: Bearer` or `X-API-Key`; 401 when neither is there."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    raise AuthenticationError(
        "no API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        code="missing_api_key",
    )


async def authenticate(request: Request) -> Caller:
    """The caller behind the presented key (401 saying what is wrong with it)."""
    caller = await _runtime(request).auth.authenticator.authenticate(presented_key(request))
    request.state.pmp_key_id = caller.key_id  # for the access log line
    return caller


def response_headers(request: Request) -> dict[str, str]:
    """Headers every response to this request carries (the middleware adds them)."""
    headers: dict[str, str] | None = getattr(request.state, "pmp_headers", None)
    if headers is None:
        headers = {}
        request.state.pmp_headers = headers
    return headers


async def rate_limited_caller(
    request: Request, caller: Annotated[Caller, Depends(authenticate)]
) -> Caller:
    """An authenticated caller whose request fits its limits (counted as one request)."""
    limits = _services(request).limits
    await limits.admit(caller, tokens=0, headers=response_headers(request))
    return caller


async def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    """Admin routes need a key with the admin flag (403 otherwise)."""
    caller.require_admin()
    return caller


CallerDep = Annotated[Caller, Depends(rate_limited_caller)]
# For routes that count the request themselves (chat: with its token estimate).
AuthenticatedDep = Annotated[Caller, Depends(authenticate)]
AdminDep = Annotated[Caller, Depends(require_admin)]


def parse_if_match(if_match: str | None) -> int | None:
    """The version an `If-Match` header expects (`3`, `"3"` or `W/"3"`), or None."""
    if if_match is None:
        return None
    raw = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidRequestError("If-Match must be a version number", param="If-Match")
    return int(raw)


async def if_match_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    return parse_if_match(if_match)


# The version a conditional write expects; None writes unconditionally.
IfMatchDep = Annotated[int | None, Depends(if_match_version)]
