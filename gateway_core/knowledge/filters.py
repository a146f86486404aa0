"""The metadata filter language: one JSON shape for every backend, its parser and its meaning.

A filter is a condition `{"field": "a.b", "operator": "eq", "value": ...}` or a group
`{"connector": "and" | "or", "filters": [...]}`. `matches` is the reference semantics; each
backend module (filters_pg, filters_qdrant, filters_bedrock) compiles a filter to its native
form and states, in its capability table, what it cannot honour natively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict

from gateway_core.errors import InvalidRequestError

Operator = Literal[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "startsWith",
    "endsWith",
    "in",
    "notIn",
    "exists",
    "notExists",
]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
Connector = Literal["and", "or"]
Scalar: TypeAlias = str | bool | int | float
FilterValue: TypeAlias = Scalar | list[Scalar] | None

# Groups nest at most this deep (a bare condition is depth 0, a group of conditions 1).
MAX_DEPTH = 8
# Conditions in one filter, all groups together.
MAX_CONDITIONS = 100
# Values in one `in` / `notIn` / list `eq`.
MAX_LIST_VALUES = 500
MAX_STRING_LENGTH = 10_000
MAX_FIELD_SEGMENTS = 10
MAX_FIELD_LENGTH = 255

RANGE_OPERATORS: frozenset[Operator] = frozenset({"gt", "gte", "lt", "lte"})
NEGATIONS: dict[Operator, Operator] = {"ne": "eq", "notIn": "in", "notExists": "exists"}


class Condition(BaseModel):
    """One test of the metadata value at a dotted `field` path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    operator: Operator
    value: FilterValue = None

    @property
    def path(self) -> tuple[str, ...]:
        """The field's segments: `a.b` walks into the nested object `a`."""
        return tuple(self.field.split("."))


class Group(BaseModel):
    """Conditions and groups joined by one connector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: Connector
    filters: list[Condition | Group]


Filter: TypeAlias = Condition | Group


# ---------------------------------------------------------------- parsing


def parse_filter(raw: object, *, path: str = "filter") -> Filter:
    """Validate a filter's JSON; a problem raises InvalidRequestError naming its JSON path."""
    if isinstance(raw, Condition | Group):
        raw = raw.model_dump(exclude_none=True)
    counter = _Counter()
    return _parse_node(raw, path, depth=0, counter=counter)


def _parse_filter_field(raw: object) -> Filter:
    return parse_filter(raw)


# A pydantic field type that parses with parse_filter (its 400 names the JSON path).
ParsedFilter = Annotated[Filter, BeforeValidator(_parse_filter_field)]


@dataclass
class _Counter:
    conditions: int = 0


def _fail(path: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {message}", param=path, code="invalid_filter")


def _parse_node(raw: object, path: str, *, depth: int, counter: _Counter) -> Filter:
    if not isinstance(raw, Mapping):
        raise _fail(path, "a filter must be an object (a condition or a group)")
    if "connector" in raw or "filters" in raw:
        if "field" in raw or "operator" in raw:
            raise _fail(path, "an object is either a condition or a group, not both")
        return _parse_group(raw, path, depth=depth + 1, counter=counter)
    return _parse_condition(raw, path, counter)


def _check_keys(raw: Mapping[Any, Any], allowed: Iterable[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"unknown key {key!r}; expected {', '.join(allowed)}")


def _parse_group(raw: Mapping[Any, Any], path: str, *, depth: int, counter: _Counter) -> Group:
    _check_keys(raw, ("connector", "filters"), path)
    if depth > MAX_DEPTH:
        raise _fail(path, f"groups nest at most {MAX_DEPTH} deep")
    connector = raw.get("connector")
    if connector not in ("and", "or"):
        raise _fail(f"{path}.connector", "connector must be 'and' or 'or'")
    members = raw.get("filters")
    if not isinstance(members, list) or not members:
        raise _fail(f"{path}.filters", "filters must be a non-empty list")
    parsed = [
        _parse_node(member, f"{path}.filters[{index}]", depth=depth, counter=counter)
        for index, member in enumerate(members)
    ]
    return Group(connector=connector, filters=parsed)


def _parse_condition(raw: Mapping[Any, Any], path: str, counter: _Counter) -> Condition:
    _check_keys(raw, ("field", "operator", "value"), path)
    counter.conditions += 1
    if counter.conditions > MAX_CONDITIONS:
        raise _fail(path, f"a filter holds at most {MAX_CONDITIONS} conditions")
    field = raw.get("field")
    problem = _field_problem(field)
    if problem:
        raise _fail(f"{path}.field", problem)
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise _fail(f"{path}.operator", f"operator must be one of {', '.join(OPERATORS)}")
    value = raw.get("value")
    problem = _value_problem(operator, value)
    if problem:
        raise _fail(f"{path}.value", problem)
    return Condition(field=field, operator=operator, value=value)


def _field_problem(field: object) -> str | None:
    if not isinstance(field, str) or not field:
        return "field must be a non-empty string (a dotted path into the metadata)"
    if len(field) > MAX_FIELD_LENGTH:
        return f"field is longer than {MAX_FIELD_LENGTH} characters"
    segments = field.split(".")
    if len(segments) > MAX_FIELD_SEGMENTS:
        return f"field has more than {MAX_FIELD_SEGMENTS} segments"
    if any(not segment for segment in segments):
        return "field has an empty segment (two dots, or a dot at an end)"
    # Qdrant quotes keys with '"'; control characters cannot be stored everywhere.
    if any(char == '"' or ord(char) < 32 for char in field):
        return "field may not contain double quotes or control characters"
    return None


def _scalar_problem(value: object) -> str | None:
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            return f"strings are at most {MAX_STRING_LENGTH} characters"
        # PostgreSQL's jsonb and text cannot hold NUL, so no document could match it.
        return "strings may not contain NUL characters" if "\x00" in value else None
    if isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    return "expected a string, number or boolean"


def _list_problem(value: object, *, allow_empty: bool) -> str | None:
    if not isinstance(value, list):
        return "expected a list of strings, numbers or booleans"
    if not value and not allow_empty:
        return "expected a non-empty list"
    if len(value) > MAX_LIST_VALUES:
        return f"lists hold at most {MAX_LIST_VALUES} values"
    for index, item in enumerate(value):
        problem = _scalar_problem(item)
        if problem:
            return f"[{index}]: {problem}"
    return None


def _value_problem(operator: Operator, value: object) -> str | None:
    if operator in ("exists", "notExists"):
        return None if value is None else f"{operator} takes no value"
    if value is None:
        return f"{operator} requires a value"
    if operator in ("in", "notIn"):
        return _list_problem(value, allow_empty=False)
    if operator in ("eq", "ne"):
        if isinstance(value, list):
            return _list_problem(value, allow_empty=True)
        return _scalar_problem(value)
    if operator in RANGE_OPERATORS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{operator} compares with a number or a string"
        return _scalar_problem(value)
    if operator in ("startsWith", "endsWith"):
        return _scalar_problem(value) if isinstance(value, str) else f"{operator} takes a string"
    return _scalar_problem(value)  # contains


# ---------------------------------------------------------------- reference semantics

_MISSING = object()


def resolve(metadata: Mapping[str, Any], path: Iterable[str]) -> Any:
    """The value at a dotted path, walking nested objects only; `_MISSING` when absent."""
    current: Any = metadata
    for segment in path:
        if not isinstance(current, Mapping) or segment not in current:
            return _MISSING
        current = current[segment]
    return current


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _as_number(value: Any) -> Decimal | None:
    """JSON numbers compare as their decimal text, as PostgreSQL's numeric does."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return None


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: 1 equals 1.0, a boolean is never a number, lists compare whole."""
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None or right_number is not None:
        return left_number is not None and left_number == right_number
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return left is None and right is None


def _ordered(operator: Operator, actual: Any, wanted: Any) -> bool:
    """Numbers with numbers, strings with strings (code point order), never across."""
    left: Any
    right: Any
    if isinstance(wanted, str):
        if not isinstance(actual, str):
            return False
        left, right = actual, wanted
    else:
        left, right = _as_number(actual), _as_number(wanted)
        if left is None or right is None:
            return False
    if operator == "gt":
        return bool(left > right)
    if operator == "gte":
        return bool(left >= right)
    if operator == "lt":
        return bool(left < right)
    return bool(left <= right)


def value_exists(value: Any) -> bool:
    """A field exists when it holds something other than null or an empty list."""
    return not (value is _MISSING or value is None or (isinstance(value, list) and not value))


def _contains(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(wanted, str) and wanted in actual
    if isinstance(actual, list):
        return any(json_equal(item, wanted) for item in actual)
    return False


def _test_positive(operator: Operator, actual: Any, wanted: Any) -> bool:
    if operator == "exists":
        return value_exists(actual)
    if actual is _MISSING:
        return False
    if operator == "eq":
        return json_equal(actual, wanted)
    if operator == "in":
        return any(json_equal(actual, item) for item in wanted)
    if operator in RANGE_OPERATORS:
        return _ordered(operator, actual, wanted)
    if operator == "contains":
        return _contains(actual, wanted)
    if not isinstance(actual, str):
        return False
    return actual.startswith(wanted) if operator == "startsWith" else actual.endswith(wanted)


def matches_condition(condition: Condition, metadata: Mapping[str, Any]) -> bool:
    """Whether one condition holds for a document's metadata."""
    actual = resolve(metadata, condition.path)
    negated = NEGATIONS.get(condition.operator)
    if negated is not None:
        return not _test_positive(negated, actual, condition.value)
    return _test_positive(condition.operator, actual, condition.value)


def matches(filter: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """The reference semantics: whether `filter` (None: no filter) holds for `metadata`."""
    if filter is None:
        return True
    if isinstance(filter, Condition):
        return matches_condition(filter, metadata)
    if filter.connector == "and":
        return all(matches(member, metadata) for member in filter.filters)
    return any(matches(member, metadata) for member in filter.filters)


def conditions(filter: Filter) -> Iterable[Condition]:
    """Every condition of a filter, depth first."""
    if isinstance(filter, Condition):
        yield filter
        return
    for member in filter.filters:
        yield from conditions(member)


def all_of(members: list[Filter]) -> Filter | None:
    """The conjunction of `members` (None when empty, the member itself when one)."""
    if not members:
        return None
    return members[0] if len(members) == 1 else Group(connector="and", filters=members)


# ---------------------------------------------------------------- capability tables

# native: the backend decides exactly. narrowed: the backend pre-filters with a superset and
# the gateway decides exactly. gateway: the gateway alone decides, over over-fetched
# candidates. refused: a 400 naming the operator and the path.
Capability = Literal["native", "narrowed", "gateway", "refused"]


@dataclass(frozen=True)
class Support:
    """How one backend honours one operator: `level` for the weakest case of its values,
    `note` for the values it honours better."""

    level: Capability
    note: str = ""


CapabilityTable: TypeAlias = Mapping[Operator, Support]


def _cell(support: Support) -> str:
    return support.level + (f" ({support.note})" if support.note else "")


def capability_markdown(tables: Mapping[str, CapabilityTable]) -> str:
    """The capability tables as one Markdown table, one column per backend."""
    names = list(tables)
    lines = [
        "| operator | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for operator in OPERATORS:
        cells = [_cell(tables[name][operator]) for name in names]
        lines.append(f"| `{operator}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
