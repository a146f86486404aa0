"""An evaluator of Bedrock Knowledge Base `RetrievalFilter` JSON, for the Bedrock fake server.

It follows the API reference (API_agent-runtime_RetrievalFilter): a filter is a union with
exactly one member; `andAll` / `orAll` hold 2..5 filters; the other members hold
`{"key", "value"}`. Every attribute operator needs the key present, except `notEquals`,
which the reference says also holds when the key is absent. Where the reference is silent
the fake takes the stricter reading real vector stores show: `equals` / `in` on a list
attribute match any member; comparisons and `startsWith` apply to numbers / strings of the
same type only; a boolean is not a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ATTRIBUTE_OPERATORS = frozenset(
    {
        "equals",
        "notEquals",
        "greaterThan",
        "greaterThanOrEquals",
        "lessThan",
        "lessThanOrEquals",
        "in",
        "notIn",
        "startsWith",
        "listContains",
        "stringContains",
    }
)
LIST_OPERATORS = frozenset({"andAll", "orAll"})


class BedrockFilterError(ValueError):
    """The filter is not a valid RetrievalFilter (the server answers ValidationException)."""


def validate(filter: object) -> None:
    """Raise BedrockFilterError unless `filter` is a well-formed RetrievalFilter."""
    if not isinstance(filter, Mapping) or len(filter) != 1:
        raise BedrockFilterError("RetrievalFilter is a union: set exactly one member")
    (name, body), *_ = filter.items()
    if name in LIST_OPERATORS:
        if not isinstance(body, list) or not 2 <= len(body) <= 5:
            raise BedrockFilterError(f"{name} takes 2 to 5 filters")
        for member in body:
            validate(member)
        return
    if name not in ATTRIBUTE_OPERATORS:
        raise BedrockFilterError(f"unknown RetrievalFilter member {name!r}")
    if not isinstance(body, Mapping) or set(body) != {"key", "value"}:
        raise BedrockFilterError(f"{name} takes a FilterAttribute {{key, value}}")
    key = body["key"]
    if not isinstance(key, str) or not 1 <= len(key) <= 100:
        raise BedrockFilterError("FilterAttribute.key is a string of 1 to 100 characters")
    if name in ("in", "notIn") and not isinstance(body["value"], list):
        raise BedrockFilterError(f"{name} takes a list value")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(attribute: Any, value: Any) -> bool:
    if _is_number(attribute) and _is_number(value):
        return bool(attribute == value)
    return type(attribute) is type(value) and attribute == value


def _equals(attribute: Any, value: Any) -> bool:
    if isinstance(attribute, list):
        return any(_same(member, value) for member in attribute)
    return _same(attribute, value)


def _compare(name: str, attribute: Any, value: Any) -> bool:
    if not (_is_number(attribute) and _is_number(value)):
        return False
    if name == "greaterThan":
        return bool(attribute > value)
    if name == "greaterThanOrEquals":
        return bool(attribute >= value)
    if name == "lessThan":
        return bool(attribute < value)
    return bool(attribute <= value)


def _string_contains(attribute: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(attribute, str):
        return value in attribute
    if isinstance(attribute, list):
        return any(isinstance(member, str) and value in member for member in attribute)
    return False


def _attribute_holds(name: str, attribute: Any, value: Any) -> bool:
    if name == "equals":
        return _equals(attribute, value)
    if name in ("in", "notIn"):
        found = any(_equals(attribute, item) for item in value)
        return found if name == "in" else not found
    if name == "startsWith":
        return isinstance(attribute, str) and isinstance(value, str) and attribute.startswith(value)
    if name == "listContains":
        return isinstance(attribute, list) and any(_same(member, value) for member in attribute)
    if name == "stringContains":
        return _string_contains(attribute, value)
    return _compare(name, attribute, value)


def evaluate(filter: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether a document with these metadata attributes passes the (valid) filter."""
    (name, body), *_ = filter.items()
    if name == "andAll":
        return all(evaluate(member, metadata) for member in body)
    if name == "orAll":
        return any(evaluate(member, metadata) for member in body)
    key, value = body["key"], body["value"]
    if name == "notEquals":
        return key not in metadata or not _equals(metadata[key], value)
    if key not in metadata:
        return False
    return _attribute_holds(name, metadata[key], value)
