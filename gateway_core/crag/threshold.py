"""The `threshold` grader: a document's retrieval similarity against the two thresholds.

Similarities are not always in [0, 1] (cosine is in [-1, 1], an inner product is
unbounded), so a score outside is clamped to the nearer end before it is compared: a
negative similarity grades as 0, one above 1 as 1. The unclamped value stays in
`retrieval_score`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway_core.crag.models import CandidateDocument, ScoredDocument, Thresholds
from gateway_core.errors import InvalidRequestError


def clamp_score(value: float) -> float:
    """`value` clamped into [0, 1]."""
    return min(1.0, max(0.0, value))


def require_retrieval_scores(documents: Sequence[CandidateDocument], strategy: str) -> None:
    """400 naming the first document without a finite retrieval score."""
    for index, doc in enumerate(documents):
        if doc.retrieval_score is None:
            raise InvalidRequestError(
                f"strategy {strategy!r} compares retrieval scores, and documents[{index}]"
                " has no `score`: send one, or use strategy 'llm'",
                param=f"documents[{index}].score",
            )
        if not math.isfinite(doc.retrieval_score):
            raise InvalidRequestError(
                f"documents[{index}].score must be a finite number",
                param=f"documents[{index}].score",
            )


def _reason(score: float, raw: float, thresholds: Thresholds) -> str:
    shown = f"retrieval score {score:g}" + ("" if raw == score else f" (clamped from {raw:g})")
    if score >= thresholds.correct:
        return f"{shown} is at or above the correct threshold {thresholds.correct:g}"
    if score >= thresholds.ambiguous:
        return (
            f"{shown} is between the ambiguous threshold {thresholds.ambiguous:g}"
            f" and the correct threshold {thresholds.correct:g}"
        )
    return f"{shown} is below the ambiguous threshold {thresholds.ambiguous:g}"


def grade_by_threshold(doc: CandidateDocument, thresholds: Thresholds) -> ScoredDocument:
    """The document graded by its (clamped) retrieval score alone."""
    if doc.retrieval_score is None:
        raise InvalidRequestError(f"document {doc.id!r} has no retrieval score", param="documents")
    score = clamp_score(doc.retrieval_score)
    return ScoredDocument(
        id=doc.id,
        content=doc.content,
        metadata=doc.metadata,
        score=score,
        classification=thresholds.classify(score),
        reason=_reason(score, doc.retrieval_score, thresholds),
        scored_by="threshold",
        retrieval_score=doc.retrieval_score,
    )
