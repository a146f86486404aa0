"""Corrective-RAG grading without a gateway: thresholds, summary, actions, reply reading.

The judge here is a scripted implementation of the `Judge` protocol (the API's is a chat
run, tested in tests/integration/test_crag.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway_core.crag import (
    CandidateDocument,
    Judgement,
    JudgePrompt,
    JudgeSetup,
    Thresholds,
    parse_judgement,
    score_documents,
)
from gateway_core.crag.judge import graded_by_judgement
from gateway_core.crag.models import ScoredDocument, build_result
from gateway_core.crag.threshold import grade_by_threshold
from gateway_core.errors import InvalidRequestError
from gateway_core.templating import MissingVariablesError

T = Thresholds.of(0.7, 0.3)


def _doc(doc_id: str, score: float | None = None, content: str | None = None) -> CandidateDocument:
    return CandidateDocument(doc_id, content or f"text of {doc_id}", {"n": doc_id}, score)


def _graded(classification: str, score: float = 0.5) -> ScoredDocument:
    return ScoredDocument.model_validate(
        {"id": "d", "content": "c", "score": score, "classification": classification}
        | {"scored_by": "threshold"}
    )


class ScriptedJudge:
    """Answers by the document text it is shown; records calls and peak concurrency."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.asked: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def ask(self, model_id: str, messages: list[dict[str, Any]]) -> str:
        text = messages[-1]["content"]
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)  # let every other call that may start, start
        self.in_flight -= 1
        doc_id = next(key for key in self.replies if f"text of {key}" in text)
        self.asked.append(doc_id)
        return self.replies[doc_id]


# --- thresholds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.7, "correct"),  # the correct threshold itself is correct
        (0.6999, "ambiguous"),
        (0.3, "ambiguous"),  # the ambiguous threshold itself is ambiguous
        (0.2999, "incorrect"),
        (1.0, "correct"),
        (0.0, "incorrect"),
    ],
)
def test_threshold_edges_belong_to_the_upper_class(score: float, expected: str) -> None:
    assert grade_by_threshold(_doc("a", score), T).classification == expected


def test_scores_outside_zero_one_are_clamped_and_the_raw_value_kept() -> None:
    high = grade_by_threshold(_doc("a", 1.7), T)
    low = grade_by_threshold(_doc("b", -0.4), T)
    assert (high.score, high.classification, high.retrieval_score) == (1.0, "correct", 1.7)
    assert (low.score, low.classification, low.retrieval_score) == (0.0, "incorrect", -0.4)
    assert high.reason is not None and "clamped from 1.7" in high.reason


def test_equal_thresholds_leave_no_ambiguous_band() -> None:
    same = Thresholds.of(0.5, 0.5)
    assert [same.classify(s) for s in (0.49, 0.5, 0.51)] == ["incorrect", "correct", "correct"]


def test_threshold_defaults_and_a_low_correct_threshold_alone() -> None:
    assert Thresholds.of() == Thresholds(correct=0.7, ambiguous=0.3)
    assert Thresholds.of(0.2) == Thresholds(correct=0.2, ambiguous=0.2)
    assert Thresholds.of(0.9) == Thresholds(correct=0.9, ambiguous=0.3)


@pytest.mark.parametrize(
    ("correct", "ambiguous", "param"),
    [
        (0.4, 0.6, "ambiguous_threshold"),
        (1.5, None, "correct_threshold"),
        (0.5, -0.1, "ambiguous_threshold"),
        (float("nan"), None, "correct_threshold"),
    ],
)
def test_invalid_thresholds_are_400_naming_the_field(
    correct: float, ambiguous: float | None, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Thresholds.of(correct, ambiguous)
    assert raised.value.param == param


async def test_threshold_strategy_needs_a_score_on_every_document() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await score_documents("q", [_doc("a", 0.9), _doc("b")], strategy="threshold", thresholds=T)
    assert raised.value.param == "documents[1].score"


async def test_judged_strategies_without_a_judge_are_400() -> None:
    for strategy in ("llm", "hybrid"):
        with pytest.raises(InvalidRequestError) as raised:
            await score_documents("q", [_doc("a", 0.5)], strategy=strategy, thresholds=T)
        assert raised.value.code == "judge_model_required"


# --- summary and CRAG's actions --------------------------------------------------------


def test_summary_counts_and_percentages() -> None:
    docs = [_graded("correct"), _graded("ambiguous"), _graded("incorrect"), _graded("incorrect")]
    summary = build_result(docs, strategy="threshold", thresholds=T).summary
    assert (summary.total, summary.correct, summary.ambiguous, summary.incorrect) == (4, 1, 1, 2)
    assert summary.correct_percentage == 25.0
    assert summary.ambiguous_percentage == 25.0
    assert summary.incorrect_percentage == 50.0
    thirds = build_result(
        [_graded("correct")] * 2 + [_graded("incorrect")], strategy="llm", thresholds=T
    ).summary
    assert (thirds.correct_percentage, thirds.incorrect_percentage) == (66.67, 33.33)


@pytest.mark.parametrize(
    ("classes", "action", "needs_correction", "web_search"),
    [
        (["correct", "incorrect", "incorrect"], "correct", False, False),
        (["ambiguous", "incorrect"], "ambiguous", True, False),
        (["ambiguous", "ambiguous"], "ambiguous", True, False),
        (["incorrect", "incorrect"], "incorrect", True, True),
        ([], "incorrect", True, True),  # nothing retrieved: nothing to answer from
    ],
)
def test_crag_actions(
    classes: list[str], action: str, needs_correction: bool, web_search: bool
) -> None:
    result = build_result([_graded(c) for c in classes], strategy="threshold", thresholds=T)
    assert result.action == action
    assert result.needs_correction is needs_correction
    assert result.should_try_web_search is web_search


def test_groups_are_best_first_with_ties_in_input_order() -> None:
    docs = [
        grade_by_threshold(_doc(i, s), T)
        for i, s in (("a", 0.75), ("b", 0.9), ("c", 0.75), ("d", 0.1))
    ]
    result = build_result(docs, strategy="threshold", thresholds=T)
    assert [d.id for d in result.correct_documents] == ["b", "a", "c"]
    assert [d.id for d in result.incorrect_documents] == ["d"]


# --- reading judge replies -------------------------------------------------------------

REPLIES: list[tuple[str, float | None, str | None]] = [
    (
        '{"score": 0.92, "classification": "correct", "reason": "It states the policy."}',
        0.92,
        "correct",
    ),
    ('```json\n{"relevance": 0.1, "label": "irrelevant"}\n```', 0.1, "incorrect"),
    (
        'Here is my assessment:\n```\n{"score": 0.55, "classification": "ambiguous"}\n```\nThanks!',
        0.55,
        "ambiguous",
    ),
    ('Sure. {"relevance_score": "85%", "verdict": "Relevant"} Let me know.', 0.85, "correct"),
    ('{"result": {"score": 7, "label": "partially relevant"}}', 0.7, "ambiguous"),
    ('{"relevant": false, "reason": "about shipping"}', None, "incorrect"),
    ("{'score': 0.4, 'label': 'ambiguous'}", 0.4, "ambiguous"),  # a Python dict
    ('{"score": 0.95, "classification": "correct", "reason": "cut off', 0.95, "correct"),
    ("Score: 8/10\nClassification: CORRECT", 0.8, "correct"),
    ("0.85", 0.85, None),
    ("**0.3**", 0.3, None),
    ("4/5", 0.8, None),
    ("Relevant.", None, "correct"),
    ("INCORRECT", None, "incorrect"),
    ("No", None, "incorrect"),
    ("The document is not relevant to the question.", None, "incorrect"),
    ("This passage isn't really relevant.", None, "incorrect"),
    ("The document is partially relevant: it names the plan but not the price.", None, "ambiguous"),
    ("The document is irrelevant; it talks about shipping.", None, "incorrect"),
    ("<think>It could be relevant or irrelevant...</think>\nIncorrect.", None, "incorrect"),
    ("Relevance: high", None, "correct"),
    ("The document is relevant (score: 0.9).", 0.9, "correct"),
]


@pytest.mark.parametrize(("reply", "score", "classification"), REPLIES)
def test_real_looking_judge_replies_are_read(
    reply: str, score: float | None, classification: str | None
) -> None:
    judgement = parse_judgement(reply)
    assert judgement is not None
    assert judgement.score == pytest.approx(score) if score is not None else judgement.score is None
    assert judgement.classification == classification


def test_a_json_reason_is_kept() -> None:
    judgement = parse_judgement('{"score": 0.2, "label": "incorrect", "reason": "off topic"}')
    assert judgement == Judgement(0.2, "incorrect", "off topic")


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "I cannot determine that.",
        "1. First, consider the question.",  # a numbered list is not a score
        '{"answer": "maybe later"}',
        '{"score": 250}',  # on no scale we read
        "```json\n{broken json\n```",
        "Score: -3",
    ],
)
def test_malformed_replies_are_unparsable(reply: str) -> None:
    assert parse_judgement(reply) is None


def test_an_unparsable_reply_grades_ambiguous_and_keeps_the_reply_in_the_reason() -> None:
    graded = graded_by_judgement(_doc("a", 0.9), None, "lorem ipsum", T)
    assert graded.classification == "ambiguous"
    assert graded.score == pytest.approx(0.5)  # the middle of [0.3, 0.7)
    assert graded.reason is not None and "lorem ipsum" in graded.reason
    assert graded.retrieval_score == 0.9


def test_a_label_wins_and_a_score_alone_is_classified_by_the_thresholds() -> None:
    both = graded_by_judgement(_doc("a"), Judgement(0.9, "incorrect"), "", T)
    assert (both.score, both.classification) == (0.9, "incorrect")
    alone = graded_by_judgement(_doc("a"), Judgement(0.5, None), "", T)
    assert alone.classification == "ambiguous"
    label = graded_by_judgement(_doc("a"), Judgement(None, "correct"), "", T)
    assert (label.score, label.classification) == (1.0, "correct")


# --- the judge strategies --------------------------------------------------------------


async def test_llm_judges_every_document_concurrently_within_the_bound() -> None:
    docs = [_doc(f"d{i}") for i in range(20)]
    judge = ScriptedJudge({f"d{i}": '{"score": 0.9}' for i in range(20)})
    setup = JudgeSetup(judge=judge, model_id="judge", prompt=JudgePrompt.default(), concurrency=8)
    result = await score_documents("q", docs, strategy="llm", thresholds=T, judge=setup)
    assert result.summary.correct == 20
    assert judge.peak == 8
    assert result.judge_model == "judge"


async def test_hybrid_asks_the_judge_only_about_the_ambiguous_band() -> None:
    docs = [_doc("sure", 0.95), _doc("unsure", 0.5), _doc("off", 0.05), _doc("mid", 0.4)]
    judge = ScriptedJudge({"unsure": "Relevant.", "mid": "gibberish", "sure": "", "off": ""})
    setup = JudgeSetup(judge=judge, model_id="judge", prompt=JudgePrompt.default())
    result = await score_documents("q", docs, strategy="hybrid", thresholds=T, judge=setup)
    assert sorted(judge.asked) == ["mid", "unsure"]
    assert [d.id for d in result.correct_documents] == ["unsure", "sure"]
    assert [d.id for d in result.ambiguous_documents] == ["mid"]
    assert [d.scored_by for d in result.correct_documents] == ["llm", "threshold"]
    assert result.ambiguous_documents[0].reason is not None
    assert "gibberish" in result.ambiguous_documents[0].reason


async def test_a_failing_judge_call_fails_the_grading_with_its_own_error() -> None:
    class FailingJudge:
        async def ask(self, model_id: str, messages: list[dict[str, Any]]) -> str:
            raise InvalidRequestError("upstream refused", param="model")

    setup = JudgeSetup(judge=FailingJudge(), model_id="judge", prompt=JudgePrompt.default())
    with pytest.raises(InvalidRequestError, match="upstream refused"):
        await score_documents(
            "q", [_doc("a"), _doc("b")], strategy="llm", thresholds=T, judge=setup
        )


def test_the_default_prompt_shows_query_and_document() -> None:
    messages = JudgePrompt.default().messages("What is X?", "X is ${var:not-a-template}")
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
    assert messages[1]["content"] == (
        "Question:\nWhat is X?\n\nDocument:\nX is ${var:not-a-template}"
    )


def test_a_stored_prompt_renders_query_and_document_as_one_user_message() -> None:
    prompt = JudgePrompt.stored("grader", "Q=${var:query} D=${var:document} ${var:tone:strict}")
    assert prompt.messages("q1", "d1") == [{"role": "user", "content": "Q=q1 D=d1 strict"}]


def test_a_stored_prompt_lacking_a_judge_variable_is_400() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        JudgePrompt.stored("grader", "Is ${var:document} any good?")
    assert raised.value.code == "invalid_judge_prompt" and "query" in raised.value.message


def test_a_stored_prompt_needing_other_variables_is_400_naming_them() -> None:
    with pytest.raises(MissingVariablesError) as raised:
        JudgePrompt.stored("grader", "${var:query} ${var:document} ${var:audience}")
    assert raised.value.names == ["audience"] and raised.value.param == "prompt_id"
