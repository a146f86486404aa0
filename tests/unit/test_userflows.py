"""The workflow definition language: variables, conditions, the step walk, validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway_core.errors import InvalidRequestError
from gateway_core.templating import TemplateError
from gateway_core.userflows.conditions import compare, decide
from gateway_core.userflows.definition import (
    ConditionalStep,
    EndWorkflow,
    GoToStep,
    WorkflowBase,
    WorkflowCreate,
)
from gateway_core.userflows.plan import EndWalk, RunStep, StepLimitError, StepWalk, after_step
from gateway_core.userflows.validation import WorkflowDefinitionError, check_input, validate_input
from gateway_core.userflows.variables import (
    MISSING,
    MissingValueError,
    Scope,
    resolve_reference,
    resolve_value,
)
from tests.issue_examples import ANSWER_WITH_CONTEXT as EXAMPLE

DOCUMENTS = [
    {"id": "a", "content": "Refunds take five days.", "score": 0.9},
    {"id": "b", "content": "Invoices come monthly.", "score": 0.7},
]
SCOPE = Scope(
    request={"question": "How long?", "top_k": 3, "user": {"tags": ["x", "y"]}, "none": None},
    steps={"search": {"documents": DOCUMENTS, "count": 2}, "chat": {"usage": {"total": 7}}},
)


# --- variables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("${request:question}", "How long?"),
        ("${request:top_k}", 3),  # a whole placeholder keeps its JSON type
        ("${request:user.tags}", ["x", "y"]),
        ("${request:user.tags.1}", "y"),
        ("${request:none}", None),
        ("${request:absent:5}", 5),  # a whole-value default is read as JSON...
        ("${request:absent:en}", "en"),  # ...or as text when it is not JSON
        ("${request:absent:}", ""),
        ("${step:search:documents}", DOCUMENTS),
        ("${step:search:documents.0.content}", "Refunds take five days."),
        ("${step:chat:usage.total}", 7),
        ("${step:chat:missing:a:b}", "a:b"),  # a default may hold colons
        ("k=${request:top_k}", "k=3"),
        ("tags: ${request:user.tags}", 'tags: ["x", "y"]'),
        (
            "ctx:\n${step:search:documents}",
            "ctx:\nRefunds take five days.\n\nInvoices come monthly.",
        ),
        ("n=${request:none} d=${request:absent:none}", "n=null d=none"),
        ("$${request:question} is literal", "${request:question} is literal"),
        ("$$${request:top_k}", "$3"),
        ("costs $5", "costs $5"),
    ],
)
def test_placeholders_resolve_to_typed_values(source: str, expected: Any) -> None:
    assert resolve_value(source, SCOPE) == expected


def test_resolution_walks_dicts_and_lists() -> None:
    value = {
        "q": "${request:question}",
        "list": ["${request:top_k}", {"n": "${step:search:count}"}],
    }
    assert resolve_value(value, SCOPE) == {"q": "How long?", "list": [3, {"n": 2}]}


def test_an_empty_document_list_renders_as_empty_text() -> None:
    scope = Scope(request={}, steps={"score": {"correct_documents": []}})
    assert resolve_value("Context:${step:score:correct_documents}", scope) == "Context:"


def test_missing_values_without_default_name_every_placeholder() -> None:
    with pytest.raises(MissingValueError) as raised:
        resolve_value(
            {"a": "${request:nope}", "b": "x ${step:ghost:content} ${step:search:nothing}"},
            SCOPE,
            param="steps[2].user_message",
        )
    message = raised.value.message
    assert raised.value.param == "steps[2].user_message"
    assert raised.value.code == "missing_variable"
    for source in ("${request:nope}", "${step:ghost:content}", "${step:search:nothing}"):
        assert f"`{source}`" in message


def test_out_of_range_list_index_is_missing() -> None:
    assert resolve_reference("${step:search:documents.5}", SCOPE) is MISSING
    assert resolve_reference("${step:search:documents.5:null}", SCOPE) is None


def test_bad_placeholders_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="not a valid name"):
        resolve_value("${step:search}", SCOPE)  # a step reference needs a field
    with pytest.raises(TemplateError, match="unknown namespace"):
        resolve_value("${var:x}", SCOPE)


# --- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "actual", "expected", "holds"),
    [
        ("eq", 1, 1.0, True),
        ("eq", True, 1, False),  # booleans are not numbers
        ("eq", "a", "a", True),
        ("eq", MISSING, None, False),
        ("eq", {"a": [1]}, {"a": [1]}, True),
        ("ne", "a", "b", True),
        ("ne", 1, 1, False),
        ("gt", 2, 1, True),
        ("gt", "b", "a", True),
        ("gt", "2", 1, False),  # never across types
        ("gt", MISSING, 1, False),
        ("gte", 1, 1, True),
        ("lt", 0.5, 1, True),
        ("lt", True, 2, False),
        ("lte", 1, 1, True),
        ("lte", None, 1, False),
        ("is_empty", MISSING, None, True),
        ("is_empty", None, None, True),
        ("is_empty", "", None, True),
        ("is_empty", [], None, True),
        ("is_empty", {}, None, True),
        ("is_empty", 0, None, False),
        ("is_empty", False, None, False),
        ("is_not_empty", [1], None, True),
        ("is_not_empty", MISSING, None, False),
        ("contains", "refund policy", "fund", True),
        ("contains", ["x", 1], 1, True),
        ("contains", [True], 1, False),
        ("contains", {"k": 1}, "k", True),
        ("contains", 12, 1, False),
    ],
)
def test_each_operator(operator: Any, actual: Any, expected: Any, holds: bool) -> None:
    assert compare(operator, actual, expected) is holds


def _conditional(*conditions: dict[str, Any], default: Any = "continue") -> ConditionalStep:
    return ConditionalStep.model_validate(
        {
            "name": "c",
            "type": "conditional",
            "conditions": list(conditions),
            "default_action": default,
        }
    )


def test_the_first_condition_that_holds_chooses_each_kind_of_action() -> None:
    step = _conditional(
        {"field": "${step:search:count}", "operator": "gt", "value": 5, "action": "continue"},
        {
            "field": "${step:search:count}",
            "operator": "eq",
            "value": 2,
            "action": {"go_to_step": "search"},
        },
        {
            "field": "${request:question}",
            "operator": "contains",
            "value": "How",
            "action": {"end_workflow": {"answer": "${request:question}"}},
        },
    )
    decision = decide(step, SCOPE)
    assert decision.matched == 1 and decision.action == GoToStep(go_to_step="search")
    assert decision.output() == {"matched": 1, "action": {"go_to_step": "search"}}
    alone = _conditional(step.conditions[2].model_dump())
    ended = decide(alone, SCOPE)
    assert ended.action == EndWorkflow(end_workflow={"answer": "${request:question}"})


def test_no_condition_holding_takes_the_default_action() -> None:
    step = _conditional(
        {"field": "${request:absent}", "operator": "is_not_empty", "action": "continue"},
        default={"end_workflow": None},
    )
    decision = decide(step, SCOPE)
    assert decision.matched is None and decision.action == EndWorkflow(end_workflow=None)


def test_a_condition_value_may_read_the_input() -> None:
    step = _conditional(
        {
            "field": "${step:search:count}",
            "operator": "lt",
            "value": "${request:top_k}",
            "action": {"end_workflow": "few"},
        },
    )
    assert decide(step, SCOPE).matched == 0


# --- the walk ----------------------------------------------------------------------------


def _steps(definition: dict[str, Any]) -> WorkflowBase:
    return WorkflowBase.model_validate(definition)


LOOP = {
    "name": "loop",
    "max_steps": 7,
    "steps": [
        {"name": "ask", "type": "wait_for_input"},
        {
            "name": "again",
            "type": "conditional",
            "conditions": [
                {
                    "field": "${step:ask:input}",
                    "operator": "is_empty",
                    "action": {"go_to_step": "ask"},
                }
            ],
        },
        {"name": "done", "type": "wait_for_input"},
    ],
}


def test_continue_goes_on_and_running_past_the_end_ends_the_walk() -> None:
    steps = _steps(LOOP).steps
    assert after_step(steps, 0, None) == RunStep(1)
    assert after_step(steps, 1, "continue") == RunStep(2)
    assert after_step(steps, 2, None) == EndWalk()
    assert after_step(steps, 1, GoToStep(go_to_step="ask")) == RunStep(0)
    assert after_step(steps, 1, EndWorkflow(end_workflow=1)) == EndWalk(1, explicit=True)


def test_a_go_to_step_loop_stops_at_max_steps() -> None:
    workflow = _steps(LOOP)
    walk = StepWalk(workflow.steps, workflow.max_steps)
    names = []
    with pytest.raises(StepLimitError, match="max_steps") as raised:
        while not walk.done:
            step = walk.start()
            names.append(step.name)
            action = GoToStep(go_to_step="ask") if step.name == "again" else None
            walk.finish(action)
    assert names == ["ask", "again"] * 3 + ["ask"]
    assert raised.value.code == "max_steps_exceeded" and "'again'" in raised.value.message


def test_a_walk_that_ends_early_carries_the_output() -> None:
    workflow = _steps(LOOP)
    walk = StepWalk(workflow.steps, workflow.max_steps)
    walk.start()
    walk.finish()
    walk.start()
    assert walk.finish(EndWorkflow(end_workflow={"a": 1})) == EndWalk({"a": 1}, explicit=True)
    assert walk.done


# --- validation --------------------------------------------------------------------------


def test_the_issue_example_is_a_valid_definition() -> None:
    created = WorkflowCreate.model_validate(EXAMPLE)
    assert [step.name for step in created.steps] == ["search", "check-results", "score", "answer"]
    assert created.max_steps == 100 and created.steps[0].on_error == "fail"


def _problems(definition: dict[str, Any]) -> WorkflowDefinitionError:
    with pytest.raises(WorkflowDefinitionError) as raised:
        WorkflowCreate.model_validate(definition)
    return raised.value


def _broken(**changes: Any) -> dict[str, Any]:
    definition = copy.deepcopy(EXAMPLE)
    steps = definition["steps"]
    for key, value in changes.items():
        index, field = key.split("__")
        steps[int(index[1:])][field] = value
    return definition


@pytest.mark.parametrize(
    ("definition", "param", "reason"),
    [
        (_broken(s0__type="web_search"), "steps[0]", "does not match any of the expected tags"),
        (_broken(s3__temprature=0.2), "steps[3].temprature", "Extra inputs are not permitted"),
        (_broken(s2__name="search"), "steps[2].name", "duplicate step name 'search'"),
        (_broken(s0__query="${step:answer:content}"), "steps[0].query", "does not run before"),
        (_broken(s0__query="${step:ghost:content}"), "steps[0].query", "does not exist"),
        (_broken(s0__query="${step:search:count}"), "steps[0].query", "its own step"),
        (
            _broken(s1__default_action={"go_to_step": "nowhere"}),
            "steps[1].default_action.go_to_step",
            "'nowhere' does not exist",
        ),
        (
            _broken(
                s1__conditions=[
                    {"field": "${step:search:docs}", "operator": "is_empty", "action": "continue"}
                ]
            ),
            "steps[1].conditions[0].field",
            "'docs', which step 'search' does not output",
        ),
        (
            _broken(
                s1__conditions=[
                    {"field": "search.documents", "operator": "is_empty", "action": "continue"}
                ]
            ),
            "steps[1].conditions[0].field",
            "one `${request:...}` or `${step:...}` placeholder",
        ),
        (
            _broken(
                s1__conditions=[{"field": "${request:q}", "operator": "like", "action": "continue"}]
            ),
            "steps[1].conditions[0].operator",
            "Input should be",
        ),
        (_broken(s1__default_action="stop"), "steps[1].default_action", "an action is"),
        (_broken(s3__user_message="${step:score}"), "steps[3].user_message", "not a valid name"),
        (_broken(s2__correct_threshold=0.6), "steps[2]", "not both"),
        (
            {**EXAMPLE, "input_schema": {"type": "objekt"}},
            "input_schema.type",
            "not a valid JSON Schema",
        ),
    ],
)
def test_each_kind_of_problem_is_reported(
    definition: dict[str, Any], param: str, reason: str
) -> None:
    error = _problems(definition)
    assert isinstance(error, InvalidRequestError) and error.code == "invalid_workflow"
    assert error.param == param, error.message
    assert reason in error.message


def test_all_problems_are_reported_at_once() -> None:
    definition = _broken(
        s0__zzz=1,
        s2__name="search",
        s3__user_message="${step:later:content}",
        s1__default_action={"go_to_step": "nowhere"},
    )
    definition["input_schema"] = {"type": 5}
    error = _problems(definition)
    parts = error.message.split("; ")
    assert len(parts) == 6, parts
    assert error.param == "steps[0].zzz"
    for expected in (
        "steps[0].zzz",
        "steps[2].name",
        "steps[2].input_documents",  # the renamed step now reads itself
        "steps[3].user_message",
        "steps[1].default_action.go_to_step",
        "input_schema",
    ):
        assert any(part.startswith(expected) for part in parts), (expected, parts)


def test_nested_steps_see_earlier_steps_and_their_own_scope() -> None:
    definition = {
        "id": "nested",
        "name": "nested",
        "steps": [
            {
                "name": "search",
                "type": "knowledge_base_search",
                "knowledge_base_id": "kb",
                "query": "${request:q}",
            },
            {
                "name": "each",
                "type": "for_each",
                "items": "${step:search:documents}",
                "steps": [
                    {
                        "name": "judge",
                        "type": "chat_completion",
                        "model_id": "m",
                        "user_message": "${step:each:item.content} of ${step:search:count}",
                    }
                ],
            },
            {
                "name": "both",
                "type": "parallel",
                "branches": {
                    "left": [{"name": "l1", "type": "http_request", "url": "https://x.test"}],
                    "right": [
                        {
                            "name": "r1",
                            "type": "http_request",
                            "url": "https://y.test",
                            "body": {"from": "${step:l1:body}"},
                        }
                    ],
                },
            },
            {
                "name": "last",
                "type": "chat_completion",
                "model_id": "m",
                "user_message": "${step:both:left} ${step:each:results} ${step:judge:content}",
            },
        ],
    }
    error = _problems(definition)
    parts = error.message.split("; ")
    assert len(parts) == 2, parts
    assert parts[0].startswith("steps[2].branches.right[0].body.from: `${step:l1:body}`")
    assert "does not run before" in parts[0]
    assert parts[1].startswith("steps[3].user_message: `${step:judge:content}`")


def test_skipped_failures_add_an_error_field() -> None:
    definition = _broken(s0__on_error="skip")
    definition["steps"][1]["conditions"][0]["field"] = "${step:search:error}"
    assert WorkflowCreate.model_validate(definition).steps[0].on_error == "skip"
    assert (
        "does not output"
        in _problems(
            _broken(
                s1__conditions=[
                    {"field": "${step:search:error}", "operator": "is_empty", "action": "continue"}
                ]
            )
        ).message
    )


def test_the_execution_input_is_checked_against_the_schema() -> None:
    schema = EXAMPLE["input_schema"]
    assert validate_input(schema, {"question": "hi"}) == []
    violations = validate_input(
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "q": {"type": "string"}},
            "required": ["q"],
        },
        {"n": "five"},
    )
    assert [(v.path, v.message) for v in violations] == [
        ("input", "'q' is a required property"),
        ("input.n", "'five' is not of type 'integer'"),
    ]
    with pytest.raises(InvalidRequestError) as raised:
        check_input(schema, {"question": 3})
    assert raised.value.param == "input.question" and raised.value.code == "invalid_input"
