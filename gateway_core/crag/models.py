"""Corrective-RAG domain: documents to grade, graded documents, and the result's actions.

The actions follow CRAG (Yan et al., 2024, "Corrective Retrieval Augmented Generation"):
the retrieval is *correct* when at least one document is graded correct, *incorrect* when
every document is graded incorrect, and *ambiguous* otherwise. `needs_correction` is "no
correct document"; `should_try_web_search` is "every document incorrect" (for an empty
retrieval both hold: there is nothing to answer from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway_core.errors import InvalidRequestError

Classification = Literal["correct", "ambiguous", "incorrect"]
Strategy = Literal["threshold", "llm", "hybrid"]
ScoredBy = Literal["threshold", "llm"]
CLASSIFICATIONS: tuple[Classification, ...] = ("correct", "ambiguous", "incorrect")

DEFAULT_CORRECT_THRESHOLD = 0.7
DEFAULT_AMBIGUOUS_THRESHOLD = 0.3


@dataclass(frozen=True)
class Thresholds:
    """Score >= `correct` is correct; >= `ambiguous` (and below `correct`) is ambiguous."""

    correct: float
    ambiguous: float

    @classmethod
    def of(cls, correct: float | None = None, ambiguous: float | None = None) -> Thresholds:
        """Checked thresholds; a missing `ambiguous` is the default, or `correct` if lower
        (so `{"correct_threshold": 0.2}` alone is valid and simply has no ambiguous band)."""
        upper = DEFAULT_CORRECT_THRESHOLD if correct is None else correct
        lower = min(DEFAULT_AMBIGUOUS_THRESHOLD, upper) if ambiguous is None else ambiguous
        for name, value in (("correct_threshold", upper), ("ambiguous_threshold", lower)):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InvalidRequestError(f"{name} must be between 0 and 1", param=name)
        if lower > upper:
            raise InvalidRequestError(
                f"ambiguous_threshold ({lower}) may not be above correct_threshold ({upper})",
                param="ambiguous_threshold",
            )
        return cls(correct=upper, ambiguous=lower)

    def classify(self, score: float) -> Classification:
        if score >= self.correct:
            return "correct"
        if score >= self.ambiguous:
            return "ambiguous"
        return "incorrect"

    @property
    def band_middle(self) -> float:
        """The score given to a document graded ambiguous without a score of its own."""
        return (self.correct + self.ambiguous) / 2


@dataclass(frozen=True)
class CandidateDocument:
    """A retrieved document to grade; `retrieval_score` is the search's similarity."""

    id: str
    content: str
    metadata: dict[str, Any]
    retrieval_score: float | None = None


class ScoredDocument(BaseModel):
    """A graded document: relevance `score` in [0, 1], its classification and why."""

    model_config = ConfigDict(frozen=True)

    id: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    score: float = Field(ge=0.0, le=1.0)
    classification: Classification
    reason: str | None = None
    scored_by: ScoredBy
    retrieval_score: float | None = None  # as the retrieval gave it, before any clamping


class CragSummary(BaseModel):
    """Counts per classification and their share of all documents, in percent."""

    total: int
    correct: int
    ambiguous: int
    incorrect: int
    correct_percentage: float
    ambiguous_percentage: float
    incorrect_percentage: float


class CragResult(BaseModel):
    """The graded documents grouped by classification, with CRAG's action."""

    strategy: Strategy
    correct_threshold: float
    ambiguous_threshold: float
    judge_model: str | None = None
    correct_documents: list[ScoredDocument]
    ambiguous_documents: list[ScoredDocument]
    incorrect_documents: list[ScoredDocument]
    summary: CragSummary
    action: Classification
    needs_correction: bool
    should_try_web_search: bool


def _percentage(part: int, total: int) -> float:
    return round(100.0 * part / total, 2) if total else 0.0


def summarize(documents: list[ScoredDocument]) -> CragSummary:
    counts = {name: sum(d.classification == name for d in documents) for name in CLASSIFICATIONS}
    total = len(documents)
    return CragSummary(
        total=total,
        correct=counts["correct"],
        ambiguous=counts["ambiguous"],
        incorrect=counts["incorrect"],
        correct_percentage=_percentage(counts["correct"], total),
        ambiguous_percentage=_percentage(counts["ambiguous"], total),
        incorrect_percentage=_percentage(counts["incorrect"], total),
    )


def crag_action(documents: list[ScoredDocument]) -> Classification:
    """CRAG's action for a retrieval: correct, incorrect, or ambiguous in between."""
    if any(doc.classification == "correct" for doc in documents):
        return "correct"
    if all(doc.classification == "incorrect" for doc in documents):
        return "incorrect"  # an empty retrieval included
    return "ambiguous"


def build_result(
    documents: list[ScoredDocument],
    *,
    strategy: Strategy,
    thresholds: Thresholds,
    judge_model: str | None = None,
) -> CragResult:
    """The result for graded documents, each group best first (ties in the input's order)."""
    action = crag_action(documents)
    ranked = sorted(documents, key=lambda doc: -doc.score)
    return CragResult(
        strategy=strategy,
        correct_threshold=thresholds.correct,
        ambiguous_threshold=thresholds.ambiguous,
        judge_model=judge_model,
        correct_documents=[doc for doc in ranked if doc.classification == "correct"],
        ambiguous_documents=[doc for doc in ranked if doc.classification == "ambiguous"],
        incorrect_documents=[doc for doc in ranked if doc.classification == "incorrect"],
        summary=summarize(documents),
        action=action,
        needs_correction=action != "correct",
        should_try_web_search=action == "incorrect",
    )
