"""Grades retrieved documents by one strategy and builds CRAG's result.

- `threshold`: the retrieval similarity alone (every document needs a score);
- `llm`: the judge grades every document (scores are optional and only reported);
- `hybrid`: the threshold first; only documents in the ambiguous band go to the judge,
  so a clearly relevant or clearly irrelevant document costs no model call.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_core.crag.judge import JudgeSetup, grade_by_judge
from gateway_core.crag.models import (
    CandidateDocument,
    CragResult,
    ScoredDocument,
    Strategy,
    Thresholds,
    build_result,
)
from gateway_core.crag.threshold import grade_by_threshold, require_retrieval_scores
from gateway_core.errors import InvalidRequestError

JUDGED_STRATEGIES: frozenset[Strategy] = frozenset({"llm", "hybrid"})


def needs_judge(strategy: Strategy) -> bool:
    return strategy in JUDGED_STRATEGIES


def check_documents(documents: Sequence[CandidateDocument], strategy: Strategy) -> None:
    """400 before any grading when the strategy cannot grade these documents."""
    if strategy != "llm":
        require_retrieval_scores(documents, strategy)


async def score_documents(
    query: str,
    documents: Sequence[CandidateDocument],
    *,
    strategy: Strategy,
    thresholds: Thresholds,
    judge: JudgeSetup | None = None,
) -> CragResult:
    """The graded documents and CRAG's action; `judge` is required for llm and hybrid."""
    check_documents(documents, strategy)
    if needs_judge(strategy) and judge is None:
        raise InvalidRequestError(
            f"strategy {strategy!r} needs a judge model: pass `model_id`"
            " or set PMP_CRAG_JUDGE_MODEL",
            param="model_id",
            code="judge_model_required",
        )
    graded: list[ScoredDocument]
    if strategy == "threshold" or judge is None:
        graded = [grade_by_threshold(doc, thresholds) for doc in documents]
    elif strategy == "llm":
        graded = await grade_by_judge(query, documents, thresholds, judge)
    else:
        graded = await _hybrid(query, documents, thresholds, judge)
    return build_result(
        graded,
        strategy=strategy,
        thresholds=thresholds,
        judge_model=judge.model_id if judge is not None and needs_judge(strategy) else None,
    )


async def _hybrid(
    query: str,
    documents: Sequence[CandidateDocument],
    thresholds: Thresholds,
    judge: JudgeSetup,
) -> list[ScoredDocument]:
    """Threshold grades, with the ambiguous band's documents replaced by the judge's."""
    graded = [grade_by_threshold(doc, thresholds) for doc in documents]
    band = [index for index, doc in enumerate(graded) if doc.classification == "ambiguous"]
    judged = await grade_by_judge(query, [documents[i] for i in band], thresholds, judge)
    for index, verdict in zip(band, judged, strict=True):
        graded[index] = verdict
    return graded
