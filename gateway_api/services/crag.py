"""The corrective-RAG scoring use case: `POST /v1/crag/score`.

Documents come with the request or from a knowledge-base search (with the caller's
`knowledge_bases` permission); gateway_core.crag grades them. The judge of the `llm` and
`hybrid` strategies is a chat completion through ChatService, so each judge call is a
durable ChatWorkflow run with the model's or chain's retries, fallback and breakers, the
caller's `models`/`chains` permission, and its own count against the key's rate limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway_api.services.answers import JsonAnswer
from gateway_api.services.chat import ChatCall, ChatService
from gateway_api.services.knowledge import KnowledgeService, SearchRequest
from gateway_api.services.limits import RateLimitGate
from gateway_api.services.routing import Router
from gateway_core.auth.service import Caller
from gateway_core.crag import (
    CandidateDocument,
    JudgePrompt,
    JudgeSetup,
    Strategy,
    Thresholds,
    check_documents,
    needs_judge,
    score_documents,
)
from gateway_core.domain.prompts import Prompt
from gateway_core.errors import (
    GatewayError,
    InvalidRequestError,
    PromptNotFoundError,
    UpstreamError,
)
from gateway_core.storage.model_cache import TtlCache

RESULT_OBJECT = "crag.result"


@dataclass(frozen=True)
class KnowledgeSource:
    """Documents to grade from a search of a knowledge base, by the request's query."""

    knowledge_base_id: str
    top_k: int = 5
    filter: Any = None


@dataclass(frozen=True)
class CragRequest:
    """One scoring request as the router parsed it: `documents` or `knowledge`."""

    query: str
    documents: Sequence[CandidateDocument] | KnowledgeSource
    strategy: Strategy = "threshold"
    correct_threshold: float | None = None
    ambiguous_threshold: float | None = None
    model_id: str | None = None
    prompt_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def reply_text(completion: dict[str, Any]) -> str:
    """The first choice's text of a chat completion ('' for a refusal or tool calls)."""
    choices = completion.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


class ChatJudge:
    """gateway_core.crag's Judge as one chat completion (ChatWorkflow run) per call."""

    def __init__(self, chat: ChatService, caller: Caller, headers: dict[str, str]) -> None:
        self._chat = chat
        self._caller = caller
        self._headers = headers

    async def ask(self, model_id: str, messages: list[dict[str, Any]]) -> str:
        # No sampling settings: the judge runs with its model's own (some reasoning
        # models refuse any temperature but their default).
        call = ChatCall(
            caller=self._caller, model=model_id, body={"messages": messages}, headers=self._headers
        )
        answer = await self._chat.create(call)
        if not isinstance(answer, JsonAnswer):
            raise UpstreamError(
                f"the judge {model_id!r} did not answer with a completion", retryable=False
            )
        return reply_text(answer.body)


def _about(error: GatewayError, param: str) -> GatewayError:
    """The error pointed at this request's field (the chat path names `model`)."""
    if error.param in (None, "model"):
        error.param = param
    return error


def _candidates(hits: Sequence[dict[str, Any]]) -> list[CandidateDocument]:
    return [
        CandidateDocument(
            id=str(hit["id"]),
            content=str(hit["content"]),
            metadata=dict(hit.get("metadata") or {}),
            retrieval_score=hit.get("score"),
        )
        for hit in hits
    ]


class CragService:
    """Grades documents for a query by the threshold, llm or hybrid strategy."""

    def __init__(
        self,
        *,
        chat: ChatService,
        knowledge: KnowledgeService,
        router: Router,
        prompts: TtlCache[Prompt],
        limits: RateLimitGate,
        default_judge: str | None,
    ) -> None:
        self._chat = chat
        self._knowledge = knowledge
        self._router = router
        self._prompts = prompts
        self._limits = limits
        self._default_judge = default_judge

    async def score(self, caller: Caller, request: CragRequest) -> dict[str, Any]:
        """`{"object": "crag.result", "query", ...CragResult}`; 400s before any model call."""
        await self._limits.admit(caller, tokens=0, headers=request.headers)
        thresholds = Thresholds.of(request.correct_threshold, request.ambiguous_threshold)
        judge = await self._judge(caller, request) if needs_judge(request.strategy) else None
        if isinstance(request.documents, KnowledgeSource):
            documents = await self._search(caller, request.query, request.documents, request)
        else:
            documents = list(request.documents)
        check_documents(documents, request.strategy)
        result = await score_documents(
            request.query,
            documents,
            strategy=request.strategy,
            thresholds=thresholds,
            judge=judge,
        )
        return {"object": RESULT_OBJECT, "query": request.query, **result.model_dump(mode="json")}

    async def _judge(self, caller: Caller, request: CragRequest) -> JudgeSetup:
        """The judge model (checked: it exists, is a chat model, the key may use it) and
        its prompt (the default, or a stored one the key may use)."""
        model_id = request.model_id or self._default_judge
        if not model_id:
            raise InvalidRequestError(
                f"strategy {request.strategy!r} needs a judge model: pass `model_id`,"
                " or set PMP_CRAG_JUDGE_MODEL on the gateway",
                param="model_id",
                code="judge_model_required",
            )
        try:
            route = await self._router.resolve(model_id)
            caller.require(route.permission_kind, model_id)
        except GatewayError as error:
            raise _about(error, "model_id") from None
        prompt = JudgePrompt.default()
        if request.prompt_id is not None:
            prompt = await self._stored_prompt(caller, request.prompt_id)
        return JudgeSetup(
            judge=ChatJudge(self._chat, caller, request.headers), model_id=model_id, prompt=prompt
        )

    async def _stored_prompt(self, caller: Caller, prompt_id: str) -> JudgePrompt:
        caller.require("prompts", prompt_id)
        try:
            stored = await self._prompts.get(prompt_id)
        except PromptNotFoundError:
            raise PromptNotFoundError(
                f"the prompt `{prompt_id}` does not exist", param="prompt_id"
            ) from None
        return JudgePrompt.stored(prompt_id, stored.content)

    async def _search(
        self, caller: Caller, query: str, source: KnowledgeSource, request: CragRequest
    ) -> list[CandidateDocument]:
        search = SearchRequest(query=query, top_k=source.top_k, filter=source.filter)
        try:
            found = await self._knowledge.search(
                caller, source.knowledge_base_id, search, request.headers
            )
        except GatewayError as error:
            if error.param and error.param.startswith(("knowledge_base_id", "top_k", "filter")):
                error.param = f"documents.{error.param}"
            raise
        return _candidates(found["data"])
