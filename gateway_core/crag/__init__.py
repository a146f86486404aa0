"""Corrective-RAG scoring: grade retrieved documents as correct, ambiguous or incorrect.

Pure domain logic: no HTTP, no Temporal. The judge model is reached through the `Judge`
protocol, which the API (a chat run) and a workflow activity each implement.
"""

from gateway_core.crag.judge import Judge, JudgePrompt, JudgeSetup
from gateway_core.crag.models import (
    CandidateDocument,
    Classification,
    CragResult,
    CragSummary,
    ScoredDocument,
    Strategy,
    Thresholds,
)
from gateway_core.crag.replies import Judgement, parse_judgement
from gateway_core.crag.scoring import check_documents, needs_judge, score_documents

__all__ = [
    "CandidateDocument",
    "Classification",
    "CragResult",
    "CragSummary",
    "Judge",
    "JudgePrompt",
    "JudgeSetup",
    "Judgement",
    "ScoredDocument",
    "Strategy",
    "Thresholds",
    "check_documents",
    "needs_judge",
    "parse_judgement",
    "score_documents",
]
