"""The embeddings use case: limits, routing to embedding models, one EmbeddingWorkflow run.

`/v1/embeddings` answers in OpenAI's shape (floats or base64 float32). The knowledge-base
service embeds through `embed_texts`: a `local` model in-process (no run, the query path
stays fast), any other through the same run as the API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway_api.services.accounting import Accounting
from gateway_api.services.answers import JsonAnswer, run_headers
from gateway_api.services.limits import RateLimitGate
from gateway_api.services.routing import Route, Router
from gateway_api.services.run_client import RunClient
from gateway_core.auth.service import Caller
from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.embeddings import (
    MAX_INPUT_BYTES,
    MAX_INPUTS,
    TOKEN_INPUT_PROVIDERS,
    EmbeddingInput,
    EmbeddingResult,
    EmbeddingWorkflowInput,
    input_bytes,
    run_capacity,
)
from gateway_core.domain.models import LOCAL_EMBEDDING_MODELS
from gateway_core.errors import (
    GatewayError,
    InvalidRequestError,
    RequestTooLargeError,
    ServiceUnavailableError,
)
from gateway_core.knowledge.embedding import EmbeddingBatch
from gateway_core.logging import request_id_var
from gateway_core.metrics import GatewayMetrics
from gateway_core.providers.local import LocalEmbedder

EMBEDDING_WORKFLOW = "EmbeddingWorkflow"
EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True)
class EmbeddingCall:
    """One embeddings request as the router parsed it."""

    caller: Caller
    model: str
    inputs: list[EmbeddingInput]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # `user`, `input_type`, ...
    headers: dict[str, str] = field(default_factory=dict)


def estimate_tokens(inputs: Sequence[EmbeddingInput]) -> int:
    """About four characters per token; token arrays count exactly."""
    return sum(len(item) // 4 + 1 if isinstance(item, str) else len(item) for item in inputs)


def check_request(route: Route, inputs: Sequence[EmbeddingInput], dimensions: int | None) -> None:
    """What the chain's models can take: count, size, token arrays, vector size."""
    if len(inputs) > MAX_INPUTS:
        raise InvalidRequestError(
            f"at most {MAX_INPUTS} inputs per request, got {len(inputs)}", param="input"
        )
    if input_bytes(inputs) > MAX_INPUT_BYTES:
        raise RequestTooLargeError(
            f"the inputs take more than {MAX_INPUT_BYTES} bytes: split the request",
            param="input",
        )
    for step in route.steps:
        model = step.model
        if model.provider not in TOKEN_INPUT_PROVIDERS and not all(
            isinstance(item, str) for item in inputs
        ):
            raise InvalidRequestError(
                f"model `{model.id}` ({model.provider}) takes text only, not token arrays",
                param="input",
                code="unsupported_by_provider",
            )
        _check_dimensions(model, dimensions)
    size = dimensions or route.steps[0].model.dimensions or 1
    if len(inputs) > run_capacity(size):
        raise RequestTooLargeError(
            f"at most {run_capacity(size)} inputs of {size} dimensions fit one run's result"
            " (Temporal's 2 MB payload limit): split the request",
            param="input",
        )


def _check_dimensions(model: ResolvedModel, wanted: int | None) -> None:
    """A requested vector size must be one the model can give (never a larger one)."""
    if wanted is None:
        return
    if model.dimensions is not None and wanted > model.dimensions:
        raise InvalidRequestError(
            f"model `{model.id}` returns {model.dimensions} dimensions:"
            " `dimensions` may not exceed it",
            param="dimensions",
        )
    sizes = LOCAL_EMBEDDING_MODELS.get(model.upstream_model, ())
    if model.provider == "local" and wanted not in sizes:
        raise InvalidRequestError(
            f"model `{model.id}` has dimensions {', '.join(map(str, sizes))}",
            param="dimensions",
        )


def openai_list(result: EmbeddingResult, model: str, encoding: EncodingFormat) -> dict[str, Any]:
    """OpenAI's embeddings response for a run's result."""
    vectors: Sequence[Any] = (
        result.vectors.base64_rows() if encoding == "base64" else result.vectors.rows()
    )
    data = [
        {"object": "embedding", "index": index, "embedding": vector}
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


class EmbeddingService:
    """Answers embeddings requests and embeds texts for the knowledge bases."""

    def __init__(
        self,
        *,
        router: Router,
        limits: RateLimitGate,
        runs: RunClient,
        accounting: Accounting,
        metrics: GatewayMetrics,
        local: LocalEmbedder,
    ) -> None:
        self._router = router
        self._limits = limits
        self._runs = runs
        self._accounting = accounting
        self._metrics = metrics
        self._local = local

    async def create(self, call: EmbeddingCall) -> JsonAnswer:
        """The answer to one `/v1/embeddings` request (one EmbeddingWorkflow run)."""
        estimate = estimate_tokens(call.inputs)
        await self._limits.admit(call.caller, tokens=estimate, headers=call.headers)
        route = await self._router.resolve(call.model, kind="embedding")
        call.caller.require(route.permission_kind, call.model)
        check_request(route, call.inputs, call.dimensions)
        account = self._accounting.open(call.caller, call.model, estimate)
        run_id = f"emb-{uuid.uuid4().hex}"
        started = time.perf_counter()
        outcome, served_by = "error", ""
        try:
            result = await self._run(route, call.inputs, call.dimensions, call.extra, run_id)
            outcome, served_by = "ok", result.served_by
        except GatewayError as error:
            error.headers["x-pmp-run-id"] = run_id
            outcome = type(error).__name__
            account.settle(None, None)
            raise
        finally:
            self._metrics.requests.labels(call.model, served_by, outcome).inc()
            self._metrics.request_latency.labels(call.model, "False").observe(
                time.perf_counter() - started
            )
        account.settle(result.served_by, {"prompt_tokens": result.prompt_tokens})
        headers = run_headers(run_id, result.served_by, result.attempts, result.fallbacks)
        if (url := self._runs.run_url(run_id)) is not None:
            headers["x-pmp-run-url"] = url
        return JsonAnswer(openai_list(result, call.model, call.encoding_format), headers)

    async def embed_texts(self, model_id: str, texts: Sequence[str]) -> EmbeddingBatch:
        """Vectors for `texts` (TextEmbedder): a local model in-process, others by runs.

        Permissions and limits are the calling service's (the knowledge base's) concern.
        """
        route = await self._router.resolve(model_id, kind="embedding")
        first = route.steps[0].model
        if not texts:
            return EmbeddingBatch(vectors=[], prompt_tokens=0, served_by=first.id)
        if first.provider == "local":
            embedded = await self._local.embed_texts(
                first.upstream_model, texts, first.dimensions or 0
            )
            return EmbeddingBatch(embedded.vectors.tolist(), embedded.tokens, first.id)
        return await self._embed_by_runs(route, list(texts))

    async def _embed_by_runs(self, route: Route, texts: list[str]) -> EmbeddingBatch:
        """Runs of at most one run's capacity each; all must be served by one model."""
        capacity = run_capacity(route.steps[0].model.dimensions or 1)
        vectors: list[list[float]] = []
        tokens, served = 0, set()
        for start in range(0, len(texts), capacity):
            batch: list[EmbeddingInput] = list(texts[start : start + capacity])
            check_request(route, batch, None)
            result = await self._run(route, batch, None, {}, f"emb-{uuid.uuid4().hex}")
            vectors.extend(result.vectors.rows())
            tokens += result.prompt_tokens
            served.add(result.served_by)
        if len(served) > 1:
            # Vectors of different models are not comparable: never mix them in one batch.
            raise ServiceUnavailableError(
                f"the batch was served by different models ({', '.join(sorted(served))})",
                code="embedding_model_changed",
            )
        return EmbeddingBatch(vectors, tokens, served.pop())

    async def _run(
        self,
        route: Route,
        inputs: list[EmbeddingInput],
        dimensions: int | None,
        extra: dict[str, Any],
        run_id: str,
    ) -> EmbeddingResult:
        workflow_input = EmbeddingWorkflowInput(
            steps=route.steps,
            inputs=inputs,
            dimensions=dimensions,
            extra=extra,
            request_id=request_id_var.get(),
            chain_id=route.chain_id,
            chain_version=route.chain_version,
        )
        handle = await self._runs.start(
            EMBEDDING_WORKFLOW, workflow_input, run_id=run_id, result_type=EmbeddingResult
        )
        result = await self._runs.result(handle)
        if result.fallbacks and result.chain_id:
            self._metrics.fallbacks.labels(result.chain_id).inc(result.fallbacks)
        return result
