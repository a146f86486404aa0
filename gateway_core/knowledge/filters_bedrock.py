"""The filter language translated to a Bedrock Knowledge Base `RetrievalFilter` plus a residual.

Bedrock metadata is flat (string, number, boolean, list of strings), so a dotted field is
refused. Bedrock's documentation does not say how `equals` and `in` treat a list attribute
(the vector stores behind it match any element), so a string `eq` / `in` gets `equals` / `in`
as a necessary condition and the gateway decides exactly; numbers and booleans cannot be in
a Bedrock list, so their conditions are exact. `notEquals` is documented to hold for a
document without the key, so it is exactly our `ne` for numbers and booleans. `startsWith`
exists only on OpenSearch Serverless stores, so it is narrowed with `stringContains`.

Retrieve returns at most 100 results, so a residual means over-fetching up to that bound;
`strict=True` refuses (400, naming the operator and path) what Bedrock cannot decide alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from gateway_core.errors import InvalidRequestError
from gateway_core.knowledge.filters import (
    RANGE_OPERATORS,
    CapabilityTable,
    Condition,
    Filter,
    Support,
    all_of,
)

CAPABILITIES: CapabilityTable = {
    "eq": Support("narrowed", "numbers, booleans: native"),
    "ne": Support("gateway", "numbers, booleans: native"),
    "gt": Support("gateway", "numbers: native"),
    "gte": Support("gateway", "numbers: native"),
    "lt": Support("gateway", "numbers: native"),
    "lte": Support("gateway", "numbers: native"),
    "contains": Support("narrowed", "numbers, booleans: native"),
    "startsWith": Support("narrowed"),
    "endsWith": Support("narrowed"),
    "in": Support("narrowed", "numbers, booleans: native"),
    "notIn": Support("gateway", "numbers, booleans: native"),
    "exists": Support("gateway"),
    "notExists": Support("gateway"),
}

# Retrieve's numberOfResults is 1..100: the most a residual can over-fetch.
MAX_RESULTS = 100
MAX_KEY_LENGTH = 100
# andAll / orAll take 2..5 members (API reference); longer lists are nested.
_MAX_MEMBERS = 5
_RANGE_NAMES = {
    "gt": "greaterThan",
    "gte": "greaterThanOrEquals",
    "lt": "lessThan",
    "lte": "lessThanOrEquals",
}

Native = dict[str, Any]


class BedrockFilter(NamedTuple):
    """`native` RetrievalFilter JSON (None: no filter) and `residual` for `matches`."""

    native: Native | None
    residual: Filter | None


@dataclass(frozen=True)
class _Translated:
    native: Native | None  # a superset of the node (None: everything)
    exact: bool
    residual: Filter | None


def translate_bedrock(
    filter: Filter | None, *, strict: bool = False, path: str = "filter"
) -> BedrockFilter:
    """Translate a filter; `strict` refuses conditions Bedrock cannot decide by itself."""
    if filter is None:
        return BedrockFilter(None, None)
    translated = _translate(filter, path, strict)
    return BedrockFilter(translated.native, translated.residual)


def _translate(filter: Filter, path: str, strict: bool) -> _Translated:
    if isinstance(filter, Condition):
        translated = _translate_condition(filter, path)
        if strict and not translated.exact:
            raise InvalidRequestError(
                f"{path}: Bedrock knowledge bases cannot decide {filter.operator!r} "
                f"on {filter.field!r} by themselves",
                param=f"{path}.operator",
                code="unsupported_filter",
            )
        return translated
    members = [
        _translate(member, f"{path}.filters[{index}]", strict)
        for index, member in enumerate(filter.filters)
    ]
    exact = all(member.exact for member in members)
    if filter.connector == "and":
        natives = [member.native for member in members if member.native is not None]
        residuals = [member.residual for member in members if member.residual is not None]
        return _Translated(_combine("andAll", natives), exact, all_of(residuals))
    if any(member.native is None for member in members):
        return _Translated(None, False, filter)
    natives = [member.native for member in members if member.native is not None]
    return _Translated(_combine("orAll", natives), exact, None if exact else filter)


def _combine(connector: str, natives: list[Native]) -> Native | None:
    """andAll / orAll of 2..5 members, nesting longer lists; one member stands alone."""
    if len(natives) <= 1:
        return natives[0] if natives else None
    while len(natives) > _MAX_MEMBERS:
        chunks = [natives[i : i + _MAX_MEMBERS] for i in range(0, len(natives), _MAX_MEMBERS)]
        natives = [chunk[0] if len(chunk) == 1 else {connector: chunk} for chunk in chunks]
    return {connector: natives}


def _attribute(name: str, key: str, value: Any) -> Native:
    return {name: {"key": key, "value": value}}


def _translate_condition(condition: Condition, path: str) -> _Translated:
    if "." in condition.field or len(condition.field) > MAX_KEY_LENGTH:
        raise InvalidRequestError(
            f"{path}.field: Bedrock metadata is flat; {condition.field!r} is not one of its keys",
            param=f"{path}.field",
            code="unsupported_filter",
        )
    native, exact = _native_condition(condition)
    return _Translated(native, exact, None if exact else condition)


def _is_exact_type(value: Any) -> bool:
    """Numbers and booleans: never members of a Bedrock list, so no list ambiguity."""
    return not isinstance(value, str | list)


def _native_condition(condition: Condition) -> tuple[Native | None, bool]:
    """The native superset of a condition and whether it is exact."""
    key, operator, value = condition.field, condition.operator, condition.value
    if operator == "eq":
        if isinstance(value, list):
            members = [_attribute("listContains", key, item) for item in value]
            return _combine("andAll", members), False
        return _attribute("equals", key, value), _is_exact_type(value)
    if operator == "ne" and _is_exact_type(value):
        return _attribute("notEquals", key, value), True
    if operator in RANGE_OPERATORS and not isinstance(value, str):
        return _attribute(_RANGE_NAMES[operator], key, value), True
    if operator == "in" and isinstance(value, list):
        return _in(key, value)
    if operator == "notIn" and isinstance(value, list) and all(map(_is_exact_type, value)):
        members = [_attribute("notEquals", key, item) for item in value]
        return _combine("andAll", members), True
    if operator == "contains":
        if isinstance(value, str):
            return _attribute("stringContains", key, value), False
        return _attribute("listContains", key, value), True
    if operator in ("startsWith", "endsWith"):
        return _attribute("stringContains", key, value), False
    return None, False


def _in(key: str, values: list[Any]) -> tuple[Native | None, bool]:
    strings = [value for value in values if isinstance(value, str)]
    numbers = [v for v in values if not isinstance(v, str | bool)]
    members = [_attribute("equals", key, v) for v in values if isinstance(v, bool)]
    if numbers:
        members.append(_attribute("in", key, numbers))
    if strings:
        members.append(_attribute("in", key, strings))
    return _combine("orAll", members), not strings
