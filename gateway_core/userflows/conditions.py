"""A conditional step's decision: the first condition that holds chooses the action.

Comparisons follow JSON, not Python: `true` is not `1`, and `gt`, `gte`, `lt`, `lte` hold
only between two numbers or two strings (any other pair, a missing field included, is
false). `is_empty` holds for a missing field, null, "", [] and {}. `contains` is a
substring test on strings, membership on lists and key membership on objects.

Pure and deterministic: the workflow interpreter runs this in workflow code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway_core.userflows.definition import ActionValue, Condition, ConditionalStep, Operator
from gateway_core.userflows.variables import MISSING, Scope, resolve_reference, resolve_value


@dataclass(frozen=True)
class Decision:
    """The chosen action and which condition chose it (None: the default action)."""

    action: ActionValue
    matched: int | None

    def output(self) -> dict[str, Any]:
        """The conditional step's output (`matched`, `action`)."""
        action = self.action if isinstance(self.action, str) else self.action.model_dump()
        return {"matched": self.matched, "action": action}


def decide(step: ConditionalStep, scope: Scope) -> Decision:
    """Evaluate the conditions in order; the first that holds wins."""
    for index, condition in enumerate(step.conditions):
        if holds(condition, scope, param=f"conditions[{index}].value"):
            return Decision(condition.action, index)
    return Decision(step.default_action, None)


def holds(condition: Condition, scope: Scope, *, param: str = "value") -> bool:
    """Whether the condition holds; `value` placeholders must resolve (those of `field`
    may be missing: that is what `is_empty` tests)."""
    actual = resolve_reference(condition.field, scope)
    expected = None
    if condition.operator not in ("is_empty", "is_not_empty"):
        expected = resolve_value(condition.value, scope, param=param)
    return compare(condition.operator, actual, expected)


def compare(operator: Operator, actual: Any, expected: Any) -> bool:
    """`actual <operator> expected` with the rules above; `actual` may be MISSING."""
    return _OPERATORS[operator](actual, expected)


def is_empty(value: Any) -> bool:
    return value is MISSING or value is None or value in ("", [], {})


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: numbers by value, but booleans are not numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if left is MISSING or right is MISSING:
        return False
    return type(left) is type(right) and bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """A range test that holds only between two numbers or two strings."""

    def ordered(actual: Any, expected: Any) -> bool:
        both_numbers = _is_number(actual) and _is_number(expected)
        both_strings = isinstance(actual, str) and isinstance(expected, str)
        return (both_numbers or both_strings) and test(actual, expected)

    return ordered


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(json_equal(item, expected) for item in actual)
    if isinstance(actual, Mapping):
        return isinstance(expected, str) and expected in actual
    return False


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": json_equal,
    "ne": lambda actual, expected: not json_equal(actual, expected),
    "gt": _ordered(lambda actual, expected: actual > expected),
    "gte": _ordered(lambda actual, expected: actual >= expected),
    "lt": _ordered(lambda actual, expected: actual < expected),
    "lte": _ordered(lambda actual, expected: actual <= expected),
    "is_empty": lambda actual, _expected: is_empty(actual),
    "is_not_empty": lambda actual, _expected: not is_empty(actual),
    "contains": _contains,
}
