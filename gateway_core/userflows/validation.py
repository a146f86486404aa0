"""Save-time checks of a workflow definition, every problem reported in one 400.

Parsing a create or update body (definition.WorkflowCreate / WorkflowUpdate) runs the
model's own checks (unknown step types and fields, bad values) and, on the same raw
document, the checks that need the whole definition: duplicate step names, `${step:...}`
references to unknown, later or the same step, to fields a step does not output,
`go_to_step` targets that are not steps of the same list, condition fields that are not
one placeholder, invalid JSON Schemas. Whether the models, knowledge bases and prompts a
definition names exist is checked in the write's transaction
(gateway_core.storage.workflows), once the definition is otherwise sound.

`validate_input` checks an execution input against the workflow's `input_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for
from pydantic import ModelWrapValidatorHandler, ValidationError

from gateway_core.errors import InvalidRequestError
from gateway_core.templating import STEP, Placeholder, TemplateError
from gateway_core.userflows.definition import (
    ACTION_TAGS,
    MAX_NESTING,
    STEP_TYPES,
    ForEachStep,
)
from gateway_core.userflows.variables import placeholders_in, step_reference, whole_placeholder

Path = tuple[str | int, ...]
_ACTION_FIELDS = frozenset({"action", "default_action", "on_timeout"})
# Union member names pydantic puts into error locations: not part of the document's path.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|literal\[.*\])$")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a definition, at a JSON path such as steps[1].query."""

    path: str
    message: str

    def describe(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def format_path(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class WorkflowDefinitionError(InvalidRequestError):
    """A definition with problems: all of them in the message, the first one's path as param."""

    default_code = "invalid_workflow"

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(
            "; ".join(problem.describe() for problem in problems),
            param=problems[0].path or None,
        )
        self.problems = list(problems)


def parse_checked(data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
    """Parse a body with `handler`, adding the whole-definition checks; raise them all."""
    if not isinstance(data, Mapping):
        return handler(data)
    problems = definition_problems(data)
    try:
        parsed = handler(data)
    except ValidationError as error:
        problems = _model_problems(error) + problems
        parsed = None
    if problems:
        raise WorkflowDefinitionError(problems)
    return parsed


def _model_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for detail in error.errors():
        message = str(detail["msg"]).removeprefix("Value error, ")
        problems.append(Problem(format_path(_document_location(detail["loc"])), message))
    return problems


def _document_location(location: Sequence[str | int]) -> list[str | int]:
    """The error's location without the tags pydantic adds for union members."""
    kept: list[str | int] = []
    for part in location:
        previous = kept[-1] if kept else None
        if isinstance(part, str) and (
            (isinstance(previous, int) and part in STEP_TYPES)
            or (previous in _ACTION_FIELDS and part in ACTION_TAGS)
            or _UNION_MEMBER.match(part)
        ):
            continue
        kept.append(part)
    return kept


# --- whole-definition checks on the raw document ----------------------------------------


@dataclass
class _Checks:
    """What the walk over a raw definition has found so far."""

    problems: list[Problem] = field(default_factory=list)
    defined: dict[str, str] = field(default_factory=dict)  # step name -> its path

    def add(self, path: Sequence[str | int], message: str) -> None:
        self.problems.append(Problem(format_path(path), message))


def definition_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """The problems that need the whole raw definition (see the module docstring)."""
    checks = _Checks()
    checks.problems.extend(schema_problems(raw.get("input_schema"), ("input_schema",)))
    steps = raw.get("steps")
    if isinstance(steps, list):
        _collect_names(steps, ("steps",), checks)
        _check_list(steps, ("steps",), {}, checks, depth=1)
    return checks.problems


def _raw_steps(steps: list[Any], path: Path) -> list[tuple[Path, Mapping[str, Any]]]:
    return [((*path, i), step) for i, step in enumerate(steps) if isinstance(step, Mapping)]


def _children(step: Mapping[str, Any], path: Path) -> list[tuple[Path, list[Any]]]:
    """The raw step lists nested in a parallel or for_each step."""
    if step.get("type") == "parallel" and isinstance(step.get("branches"), Mapping):
        return [
            ((*path, "branches", str(name)), branch)
            for name, branch in step["branches"].items()
            if isinstance(branch, list)
        ]
    if step.get("type") == "for_each" and isinstance(step.get("steps"), list):
        return [((*path, "steps"), step["steps"])]
    return []


def _collect_names(steps: list[Any], path: Path, checks: _Checks) -> None:
    """Every step name in the definition; names are unique across nested lists too."""
    for step_path, step in _raw_steps(steps, path):
        name = step.get("name")
        if isinstance(name, str):
            if name in checks.defined:
                checks.add(
                    (*step_path, "name"),
                    f"duplicate step name {name!r} (also {checks.defined[name]})",
                )
            else:
                checks.defined[name] = format_path(step_path)
        for child_path, children in _children(step, step_path):
            _collect_names(children, child_path, checks)


def _output_fields(step: Mapping[str, Any]) -> frozenset[str] | None:
    """The fields a raw step outputs (None when its type is unknown)."""
    step_type = STEP_TYPES.get(str(step.get("type")))
    if step_type is None:
        return None
    fields = set(step_type.OUTPUT_FIELDS)
    if step.get("type") == "parallel" and isinstance(step.get("branches"), Mapping):
        fields |= {str(name) for name in step["branches"]}
    if step.get("on_error") == "skip":
        fields.add("error")
    return frozenset(fields)


def _check_list(
    steps: list[Any],
    path: Path,
    visible: dict[str, frozenset[str] | None],
    checks: _Checks,
    *,
    depth: int,
) -> None:
    """Check one step list; `visible` holds the steps its steps may read, with their fields."""
    siblings = {str(step.get("name")) for _, step in _raw_steps(steps, path)}
    visible = dict(visible)
    for step_path, step in _raw_steps(steps, path):
        name = str(step.get("name"))
        _check_placeholders(step, step_path, visible, checks)
        _check_actions(step, step_path, siblings, checks)
        if step.get("type") == "wait_for_input":
            checks.problems.extend(
                schema_problems(step.get("input_schema"), (*step_path, "input_schema"))
            )
        children = _children(step, step_path)
        if children and depth >= MAX_NESTING:
            checks.add(step_path, f"steps nest at most {MAX_NESTING} deep")
            children = []
        inner = dict(visible)
        if step.get("type") == "for_each":
            inner[name] = ForEachStep.ITEM_FIELDS
        for child_path, child_steps in children:
            _check_list(child_steps, child_path, inner, checks, depth=depth + 1)
        visible[name] = _output_fields(step)


def _check_placeholders(
    step: Mapping[str, Any],
    path: Path,
    visible: Mapping[str, frozenset[str] | None],
    checks: _Checks,
) -> None:
    """Placeholders must parse and read only earlier steps' output fields."""
    step_type = STEP_TYPES.get(str(step.get("type")))
    for field_name in step_type.TEMPLATED_FIELDS if step_type else ():
        field_path = (*path, field_name)
        try:
            found = placeholders_in(step.get(field_name))
        except TemplateError as error:
            for problem in error.problems:
                checks.add(field_path, problem.describe())
            continue
        for below, placeholder in found:
            if placeholder.namespace == STEP:
                where = format_path(field_path) + below
                reason = _reference_problem(placeholder, step, visible, checks)
                if reason:
                    checks.problems.append(Problem(where, f"`{placeholder.source}` {reason}"))
    if step.get("type") == "conditional" and isinstance(step.get("conditions"), list):
        for index, condition in enumerate(step["conditions"]):
            _check_condition_field(condition, (*path, "conditions", index, "field"), checks)


def _reference_problem(
    placeholder: Placeholder,
    step: Mapping[str, Any],
    visible: Mapping[str, frozenset[str] | None],
    checks: _Checks,
) -> str | None:
    """Why a `${step:...}` placeholder cannot be read in `step`, or None when it can."""
    target, path = step_reference(placeholder)
    if target == step.get("name"):
        return "refers to its own step (a step reads only the output of earlier steps)"
    if target not in visible:
        if target in checks.defined:
            return f"refers to step {target!r}, which does not run before this one"
        return f"refers to step {target!r}, which does not exist"
    fields = visible[target]
    output_field = path.split(".", 1)[0]
    if fields is not None and output_field not in fields:
        shown = ", ".join(sorted(fields))
        return f"reads {output_field!r}, which step {target!r} does not output ({shown})"
    return None


def _check_condition_field(condition: Any, path: Path, checks: _Checks) -> None:
    if not isinstance(condition, Mapping) or not isinstance(condition.get("field"), str):
        return
    try:
        whole = whole_placeholder(condition["field"])
    except TemplateError:
        return  # reported with the step's placeholders
    if whole is None:
        checks.add(path, "a condition's field is one `${request:...}` or `${step:...}` placeholder")


def _check_actions(
    step: Mapping[str, Any], path: Path, siblings: set[str], checks: _Checks
) -> None:
    """`go_to_step` targets must be steps of the same list."""
    actions: list[tuple[Path, Any]] = []
    if step.get("type") == "conditional":
        actions.append(((*path, "default_action"), step.get("default_action")))
        conditions = step.get("conditions")
        for index, condition in enumerate(conditions if isinstance(conditions, list) else []):
            if isinstance(condition, Mapping):
                actions.append(((*path, "conditions", index, "action"), condition.get("action")))
    if step.get("type") == "wait_for_input":
        actions.append(((*path, "on_timeout"), step.get("on_timeout")))
    for action_path, action in actions:
        target = action.get("go_to_step") if isinstance(action, Mapping) else None
        if isinstance(target, str) and target not in siblings:
            where = "does not exist" if target not in checks.defined else "is in another list"
            checks.add(
                (*action_path, "go_to_step"),
                f"step {target!r} {where} (go_to_step names a step of the same list)",
            )


# --- JSON Schemas -----------------------------------------------------------------------


def schema_problems(schema: Any, path: Path) -> list[Problem]:
    """Whether `schema` is a valid JSON Schema (draft by its `$schema`, else 2020-12)."""
    if not isinstance(schema, dict | bool):
        return []  # absent, or the model reports the wrong type
    checker = validator_for(schema, default=Draft202012Validator)
    try:
        checker.check_schema(schema)  # type: ignore[arg-type]  # a bool is a schema too
    except SchemaError as error:
        at = format_path(path + tuple(error.path))
        return [Problem(at, f"not a valid JSON Schema: {error.message}")]
    return []


def validate_input(schema: Mapping[str, Any] | bool, value: Any) -> list[Problem]:
    """Each way `value` (an execution input) violates `schema`, sorted by path."""
    checker = validator_for(schema, default=Draft202012Validator)
    validator = checker(schema, format_checker=checker.FORMAT_CHECKER)
    violations = [
        Problem(format_path(("input", *error.absolute_path)), error.message)
        for error in validator.iter_errors(value)
    ]
    return sorted(violations)


def check_input(schema: Mapping[str, Any] | bool, value: Any) -> None:
    """A 400 listing every violation when `value` does not satisfy `schema`."""
    violations = validate_input(schema, value)
    if violations:
        raise InvalidRequestError(
            "; ".join(violation.describe() for violation in violations),
            param=violations[0].path,
            code="invalid_input",
        )
