"""The interpreter's pure pieces: failures as gateway errors, CRAG candidates, answers."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from gateway_api.services.workflow_runs import _waiting_step
from gateway_core.error_codec import application_error
from gateway_core.errors import (
    ConflictError,
    InvalidRequestError,
    UpstreamBadRequestError,
    UpstreamError,
)
from gateway_core.userflows.runs import (
    StepRecord,
    UserflowProgress,
    UserWorkflowResult,
    WaitingStep,
)
from workflows.user import _candidates, _run_failure, gateway_error


def _activity_failure(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="test",
        activity_type="userflow_kb_search",
        activity_id="search-1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = cause
    return error


def test_a_failed_activity_becomes_the_gateway_error_it_carries() -> None:
    sent = UpstreamBadRequestError("bad field", retryable=False, upstream_status=400)
    error = gateway_error(_activity_failure(application_error(sent, attempt=1)))
    assert isinstance(error, UpstreamBadRequestError)
    assert (error.message, error.upstream_status) == ("bad field", 400)


def test_failures_without_a_payload_are_upstream_errors_naming_the_cause() -> None:
    plain = gateway_error(_activity_failure(ApplicationError("boom")))
    assert isinstance(plain, UpstreamError) and plain.message == "boom"
    other = gateway_error(KeyError("prompt"))
    assert isinstance(other, UpstreamError) and "prompt" in other.message
    own = InvalidRequestError("as is")
    assert gateway_error(own) is own


def test_a_run_failure_is_final_and_round_trips() -> None:
    failure = _run_failure(ConflictError("late", code="too_late"))
    assert failure.non_retryable and failure.type == "ConflictError"
    assert isinstance(gateway_error(failure), ConflictError)


def test_search_hits_and_inline_documents_become_crag_candidates() -> None:
    found = _candidates(
        [
            {"id": "a", "content": "x", "score": 0.4, "metadata": {"k": 1}},
            {"content": "y", "retrieval_score": 1},
            {"id": 7, "content": "z", "score": "high"},
        ]
    )
    assert [(c.id, c.content, c.retrieval_score) for c in found] == [
        ("a", "x", 0.4),
        ("1", "y", 1.0),
        ("7", "z", None),
    ]
    assert found[0].metadata == {"k": 1}
    with pytest.raises(InvalidRequestError, match="not a list"):
        _candidates("text")
    with pytest.raises(InvalidRequestError, match=r"input_documents\[0\] has no `content`"):
        _candidates([{"id": "a"}])


def test_the_answer_lists_output_or_error_per_step() -> None:
    result = UserWorkflowResult(
        workflow_id="w",
        version=3,
        output={"ok": True},
        steps=[
            StepRecord(name="a", status="completed", output={"n": 1}, duration_ms=5),
            StepRecord(name="b", status="skipped", error={"message": "no"}, duration_ms=1),
        ],
    )
    assert result.answer("wf-1") == {
        "workflow_id": "w",
        "version": 3,
        "run_id": "wf-1",
        "status": "completed",
        "output": {"ok": True},
        "steps": [
            {"name": "a", "status": "completed", "output": {"n": 1}, "duration_ms": 5},
            {"name": "b", "status": "skipped", "error": {"message": "no"}, "duration_ms": 1},
        ],
    }


def test_input_goes_to_the_named_or_the_only_waiting_step() -> None:
    one = UserflowProgress(workflow_id="w", version=1, waiting_for_input=[WaitingStep(name="a")])
    assert _waiting_step(one, None, "op").name == "a"
    assert _waiting_step(one, "a", "op").name == "a"
    with pytest.raises(ConflictError):
        _waiting_step(one, "b", "op")
    with pytest.raises(ConflictError):
        _waiting_step(UserflowProgress(workflow_id="w", version=1), None, "op")
    two = one.model_copy(
        update={"waiting_for_input": [WaitingStep(name="a"), WaitingStep(name="b")]}
    )
    with pytest.raises(InvalidRequestError, match="several steps wait"):
        _waiting_step(two, None, "op")
    assert _waiting_step(two, "b", "op").name == "b"
