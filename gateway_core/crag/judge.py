"""The `llm` grader: a chat model judges each document against the query.

The judge is reached through the small `Judge` protocol (the API implements it with a
durable chat run, so the chat path's retries, fallback and breakers apply). The prompt is
a template with the variables `query` and `document`: the default below, or a stored
prompt's content. Calls run concurrently, at most `concurrency` at a time; a failed call
(an upstream error after the chat path's own retries) fails the grading as a whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway_core.crag.models import (
    CandidateDocument,
    Classification,
    ScoredDocument,
    Thresholds,
)
from gateway_core.crag.replies import Judgement, parse_judgement
from gateway_core.crag.threshold import clamp_score
from gateway_core.errors import InvalidRequestError
from gateway_core.templating import (
    VAR,
    MissingVariablesError,
    Template,
    parse_template,
    render_variables,
)

JUDGE_CONCURRENCY = 8
JUDGE_VARIABLES = ("query", "document")
_UNPARSED_EXCERPT_CHARS = 200

DEFAULT_SYSTEM_PROMPT = (
    "You grade retrieved documents for a retrieval-augmented answer. Decide whether the"
    " document helps answer the question.\n"
    "- correct: it contains information that answers the question, or is needed to.\n"
    "- ambiguous: it is related but not enough to answer, or you cannot tell.\n"
    "- incorrect: it is irrelevant to the question.\n"
    'Reply with one JSON object and nothing else: {"score": <relevance from 0 to 1>,'
    ' "classification": "correct" | "ambiguous" | "incorrect", "reason": "<one sentence>"}'
)
DEFAULT_USER_TEMPLATE = "Question:\n${var:query}\n\nDocument:\n${var:document}"


class Judge(Protocol):
    """Asks a chat model (a model or chain id) and returns the text of its reply."""

    async def ask(self, model_id: str, messages: list[dict[str, Any]]) -> str: ...


@dataclass(frozen=True)
class JudgePrompt:
    """The judge's messages: an optional system text and a user template."""

    user: Template
    system: str | None = None
    prompt_id: str | None = None  # the stored prompt it came from, if any

    @classmethod
    def default(cls) -> JudgePrompt:
        return cls(user=parse_template(DEFAULT_USER_TEMPLATE), system=DEFAULT_SYSTEM_PROMPT)

    @classmethod
    def stored(cls, prompt_id: str, content: str) -> JudgePrompt:
        """A stored prompt's content as the whole (user) message; 400 unless it uses both
        `${var:query}` and `${var:document}` and needs no other variable."""
        template = parse_template(content)
        used = {found.name for found in template.placeholders(VAR)}
        absent = [name for name in JUDGE_VARIABLES if name not in used]
        if absent:
            wanted = " and ".join(f"${{var:{name}}}" for name in JUDGE_VARIABLES)
            raise InvalidRequestError(
                f"prompt {prompt_id!r} must use {wanted} to judge a document;"
                f" it lacks {', '.join(absent)}",
                param="prompt_id",
                code="invalid_judge_prompt",
            )
        try:
            render_variables(template, dict.fromkeys(JUDGE_VARIABLES, ""))
        except MissingVariablesError as error:
            raise MissingVariablesError(
                error.names,
                param="prompt_id",
                context=f"prompt {prompt_id!r} is given only `query` and `document`",
            ) from None
        return cls(user=template, prompt_id=prompt_id)

    def messages(self, query: str, document: str) -> list[dict[str, Any]]:
        rendered = render_variables(self.user, {"query": query, "document": document})
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": rendered}]


@dataclass(frozen=True)
class JudgeSetup:
    """Who judges, with which prompt, how many at once."""

    judge: Judge
    model_id: str
    prompt: JudgePrompt
    concurrency: int = JUDGE_CONCURRENCY


def graded_by_judgement(
    doc: CandidateDocument, judgement: Judgement | None, reply: str, thresholds: Thresholds
) -> ScoredDocument:
    """The document graded by what the judge said; an unparsable reply is ambiguous.

    A label the judge gave wins; a score alone is classified by the thresholds; a label
    alone gets the score 1 (correct), 0 (incorrect) or the ambiguous band's middle.
    """
    classification: Classification
    reason: str | None
    if judgement is None:
        excerpt = reply.strip()[:_UNPARSED_EXCERPT_CHARS] or "(empty)"
        classification, score = "ambiguous", thresholds.band_middle
        reason = f"the judge's reply could not be parsed as a judgement: {excerpt!r}"
    else:
        classification = judgement.classification or thresholds.classify(judgement.score or 0)
        defaults = {"correct": 1.0, "incorrect": 0.0, "ambiguous": thresholds.band_middle}
        score = defaults[classification] if judgement.score is None else judgement.score
        reason = judgement.reason
    return ScoredDocument(
        id=doc.id,
        content=doc.content,
        metadata=doc.metadata,
        score=clamp_score(score),
        classification=classification,
        reason=reason,
        scored_by="llm",
        retrieval_score=doc.retrieval_score,
    )


async def grade_by_judge(
    query: str,
    documents: Sequence[CandidateDocument],
    thresholds: Thresholds,
    setup: JudgeSetup,
) -> list[ScoredDocument]:
    """Each document judged, in the input's order, at most `setup.concurrency` at once."""
    gate = asyncio.Semaphore(setup.concurrency)

    async def judged(doc: CandidateDocument) -> ScoredDocument:
        async with gate:
            reply = await setup.judge.ask(setup.model_id, setup.prompt.messages(query, doc.content))
        return graded_by_judgement(doc, parse_judgement(reply), reply, thresholds)

    # A task group cancels the calls still running when one fails; the caller gets that
    # call's own error (a 403, 429 or 502 in OpenAI's shape), not an exception group.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(judged(doc)) for doc in documents]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
