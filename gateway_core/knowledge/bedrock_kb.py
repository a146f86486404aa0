"""AWS Bedrock Knowledge Bases through boto3's `bedrock-agent-runtime` Retrieve API.

Read-only: Bedrock ingests its documents from S3 (a data source sync), and the runtime
API can neither write, fetch nor list them, so those calls answer 405. Search `vector`
is Bedrock's SEMANTIC search, `hybrid` its HYBRID search; there is no keyword-only
search. boto3 blocks, so every call runs on the backend's own thread pool. Retrieve
returns at most 100 results per call and pages with `nextToken`.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gateway_core.credentials.base import CredentialResolver
from gateway_core.domain.knowledge import (
    BackendHealth,
    BedrockBackendConfig,
    EmbeddedDocument,
    KnowledgeBaseRef,
    SearchHit,
    StoredDocument,
)
from gateway_core.errors import (
    ConfigurationError,
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
)
from gateway_core.knowledge.backend import DocumentPage, SearchQuery
from gateway_core.knowledge.filters import Filter, matches
from gateway_core.knowledge.filters_bedrock import translate_bedrock
from gateway_core.providers.bedrock import parse_aws_keys, translate_error

T = TypeVar("T")
NAME = "bedrock"
MAX_RESULTS_PER_CALL = 100  # Retrieve's numberOfResults maximum
MAX_PAGES = 50  # with a residual filter: at most 5,000 results are read per search
SOURCE_URI = "x-amz-bedrock-kb-source-uri"
Hits = list[SearchHit]  # a module-level name: inside the class, `list` is a method
_SEARCH_TYPES = {"vector": "SEMANTIC", "hybrid": "HYBRID"}
_FAILURES = (BotoCoreError, ClientError, urllib3.exceptions.HTTPError, OSError)
_LOCATION_FIELDS = (
    ("s3Location", "uri"),
    ("webLocation", "url"),
    ("confluenceLocation", "url"),
    ("salesforceLocation", "url"),
    ("sharePointLocation", "url"),
    ("kendraDocumentLocation", "uri"),
    ("customDocumentLocation", "id"),
)


def read_only_error(what: str) -> MethodNotAllowedError:
    return MethodNotAllowedError(
        f"bedrock knowledge bases are read-only here: {what} is not possible, their "
        "documents are managed in S3 and synced by Bedrock",
        code="read_only_knowledge_base",
    )


def _config(kb: KnowledgeBaseRef) -> BedrockBackendConfig:
    if not isinstance(kb.backend, BedrockBackendConfig):
        raise ConfigurationError(f"knowledge base {kb.id!r} is not a bedrock knowledge base")
    return kb.backend


def result_id(result: dict[str, Any]) -> str:
    """A hit's id: its source location (S3 URI, URL...), else the source-uri metadata."""
    location = result.get("location") or {}
    for kind, field in _LOCATION_FIELDS:
        value = (location.get(kind) or {}).get(field)
        if value:
            return str(value)
    metadata = result.get("metadata") or {}
    return str(metadata.get(SOURCE_URI) or result.get("documentId") or "")


def to_hit(result: dict[str, Any]) -> SearchHit:
    """One Retrieve result as a search hit; Bedrock's score as it is."""
    return SearchHit(
        id=result_id(result),
        content=str((result.get("content") or {}).get("text") or ""),
        score=float(result.get("score") or 0.0),
        metadata=dict(result.get("metadata") or {}),
    )


def _secrets(api_key: str | None) -> tuple[str | None, ...]:
    keys = parse_aws_keys(api_key)
    return (api_key,) if keys is None else (api_key, keys.secret_access_key, keys.session_token)


class BedrockKnowledgeBackend:
    """Searches AWS Bedrock Knowledge Bases (Retrieve); every write answers 405."""

    read_only = True

    def __init__(self, credentials: CredentialResolver, max_threads: int = 16) -> None:
        self._credentials = credentials
        self._max_threads = max_threads
        self._pool: ThreadPoolExecutor | None = None
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[], T]) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="bedrock-kb")
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def _client(self, config: BedrockBackendConfig, api_key: str | None) -> Any:
        """A cached bedrock-agent-runtime client per region, endpoint and credential."""
        digest = hashlib.sha256((api_key or "").encode()).hexdigest()
        cache_key = (config.region, config.endpoint_url or "", digest)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                keys = parse_aws_keys(api_key)
                session = boto3.session.Session(
                    aws_access_key_id=keys.access_key_id if keys else None,
                    aws_secret_access_key=keys.secret_access_key if keys else None,
                    aws_session_token=keys.session_token if keys else None,
                    region_name=config.region,
                )
                client = session.client(
                    "bedrock-agent-runtime",
                    endpoint_url=config.endpoint_url,
                    config=Config(
                        retries={"total_max_attempts": 2, "mode": "standard"},
                        connect_timeout=10,
                        read_timeout=60,
                        max_pool_connections=self._max_threads,
                    ),
                )
                self._clients[cache_key] = client
        return client

    async def _retrieve(self, kb: KnowledgeBaseRef, request: dict[str, Any]) -> dict[str, Any]:
        config = _config(kb)
        api_key = await self._credentials.resolve(config.credential)

        def call() -> dict[str, Any]:
            client = self._client(config, api_key)
            answer: dict[str, Any] = client.retrieve(
                knowledgeBaseId=config.knowledge_base_id, **request
            )
            return answer

        try:
            return await self._run(call)
        except _FAILURES as exc:
            raise translate_error(exc, _secrets(api_key)) from None

    async def prepare(self, kb: KnowledgeBaseRef) -> None:
        """Nothing to create: the knowledge base already exists in Bedrock."""

    async def drop(self, kb: KnowledgeBaseRef) -> None:
        """Nothing to remove: the documents stay in S3 and the Bedrock knowledge base."""

    async def upsert(self, kb: KnowledgeBaseRef, documents: Sequence[EmbeddedDocument]) -> None:
        raise read_only_error("writing documents")

    async def get(self, kb: KnowledgeBaseRef, document_id: str) -> StoredDocument | None:
        raise read_only_error("reading one document (the Retrieve API only searches)")

    async def list(
        self, kb: KnowledgeBaseRef, *, filter: Filter | None, limit: int, after: str | None
    ) -> DocumentPage:
        raise read_only_error("listing documents (the Retrieve API only searches)")

    async def delete(self, kb: KnowledgeBaseRef, document_ids: Sequence[str]) -> int:
        raise read_only_error("deleting documents")

    async def delete_matching(self, kb: KnowledgeBaseRef, filter: Filter) -> int:
        raise read_only_error("deleting documents")

    async def count(self, kb: KnowledgeBaseRef) -> int:
        raise read_only_error("counting documents (the Retrieve API only searches)")

    async def replace_source(
        self, kb: KnowledgeBaseRef, document_id: str, documents: Sequence[EmbeddedDocument]
    ) -> None:
        raise read_only_error("ingesting documents")

    async def source_hash(self, kb: KnowledgeBaseRef, document_id: str) -> str | None:
        raise read_only_error("ingesting documents")

    async def search(self, kb: KnowledgeBaseRef, query: SearchQuery) -> Hits:
        search_type = _SEARCH_TYPES.get(query.mode)
        if search_type is None:
            raise InvalidRequestError(
                "the bedrock backend has no keyword-only search; use mode 'vector' or 'hybrid'",
                param="mode",
                code="unsupported_search_mode",
            )
        native, residual = translate_bedrock(query.filter)
        hits: Hits = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            wanted = MAX_RESULTS_PER_CALL if residual is not None else query.top_k - len(hits)
            answer = await self._retrieve(
                kb, _request(query.text, search_type, native, wanted, token)
            )
            for result in answer.get("retrievalResults") or []:
                hit = to_hit(result)
                if residual is None or matches(residual, hit.metadata):
                    hits.append(hit)
            token = answer.get("nextToken")
            if len(hits) >= query.top_k or not token:
                break
        hits.sort(key=lambda hit: -hit.score)  # stable: Bedrock's order among equal scores
        threshold = query.similarity_threshold
        return [hit for hit in hits if threshold is None or hit.score >= threshold][: query.top_k]

    async def health(self, kb: KnowledgeBaseRef) -> BackendHealth:
        # The runtime API has no status call: one smallest Retrieve exercises the same
        # endpoint, credential and permission (bedrock:Retrieve) that searches use.
        try:
            await self._retrieve(kb, _request("health check", "SEMANTIC", None, 1, None))
        except GatewayError as exc:
            return BackendHealth(status="down", error=exc.message)
        return BackendHealth(status="up")


def _request(
    text: str, search_type: str, native: dict[str, Any] | None, wanted: int, token: str | None
) -> dict[str, Any]:
    """Retrieve's keyword arguments (besides the knowledge base id)."""
    vector_search: dict[str, Any] = {
        "numberOfResults": max(1, min(wanted, MAX_RESULTS_PER_CALL)),
        "overrideSearchType": search_type,
    }
    if native is not None:
        vector_search["filter"] = native
    request: dict[str, Any] = {
        "retrievalQuery": {"text": text},
        "retrievalConfiguration": {"vectorSearchConfiguration": vector_search},
    }
    if token:
        request["nextToken"] = token
    return request
