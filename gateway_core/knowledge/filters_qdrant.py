"""The filter language translated to a Qdrant payload filter plus a gateway-side residual.

Qdrant matches a list field by any of its elements (`match` and `range` both), and it keeps
1 and 1.0 apart in `match`, so most of our conditions cannot be decided by Qdrant alone. For
those it gets a necessary condition (a superset: every document our semantics accepts passes
it) and the condition itself stays in the residual, which the backend evaluates with
`matches` on the candidates Qdrant returns. Only `exists` / `notExists` (Qdrant's `is_empty`:
missing, null or []) are decided by Qdrant alone. No condition is ever dropped: the native
filter and the residual together are exactly the filter.

`match.prefix` and `match.substring` (Qdrant 1.19+) are not used, so older servers work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

from qdrant_client import models

from gateway_core.knowledge.filters import (
    RANGE_OPERATORS,
    CapabilityTable,
    Condition,
    Filter,
    Support,
    all_of,
)

CAPABILITIES: CapabilityTable = {
    "eq": Support("narrowed", "Qdrant matches lists by any element"),
    "ne": Support("gateway"),
    "gt": Support("gateway", "numbers: narrowed"),
    "gte": Support("gateway", "numbers: narrowed"),
    "lt": Support("gateway", "numbers: narrowed"),
    "lte": Support("gateway", "numbers: narrowed"),
    "contains": Support("gateway", "numbers, booleans: narrowed"),
    "startsWith": Support("gateway"),
    "endsWith": Support("gateway"),
    "in": Support("narrowed", "Qdrant matches lists by any element"),
    "notIn": Support("gateway"),
    "exists": Support("native"),
    "notExists": Support("native"),
}

# Qdrant's Range bounds are doubles: beyond 2**53 an integer bound would be rounded.
_EXACT_FLOAT_INTEGER = 2**53
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class QdrantFilter(NamedTuple):
    """`native` for Qdrant (None: no constraint) and `residual` for `matches` (None: none)."""

    native: models.Filter | None
    residual: Filter | None


@dataclass(frozen=True)
class _Translated:
    native: models.Condition | None  # a superset of the node (None: everything)
    exact: bool  # whether `native` is exactly the node
    residual: Filter | None  # what the gateway must still check


def translate_qdrant(filter: Filter | None, *, key_prefix: str = "") -> QdrantFilter:
    """Translate a filter; `key_prefix` is the payload key that holds the metadata, if any."""
    if filter is None:
        return QdrantFilter(None, None)
    translated = _translate(filter, key_prefix)
    native = translated.native
    if native is not None and not isinstance(native, models.Filter):
        native = models.Filter(must=[native])
    return QdrantFilter(native, translated.residual)


def qdrant_key(field: str, key_prefix: str = "") -> str:
    """The Qdrant payload key of a dotted field; odd segments are quoted."""
    segments = [s if _BARE_KEY.match(s) else f'"{s}"' for s in field.split(".")]
    return ".".join([key_prefix, *segments] if key_prefix else segments)


def _translate(filter: Filter, key_prefix: str) -> _Translated:
    if isinstance(filter, Condition):
        return _translate_condition(filter, qdrant_key(filter.field, key_prefix))
    members = [_translate(member, key_prefix) for member in filter.filters]
    exact = all(member.exact for member in members)
    if filter.connector == "and":
        natives = [member.native for member in members if member.native is not None]
        residuals = [m.residual for m in members if m.residual is not None]
        native = models.Filter(must=natives) if natives else None
        return _Translated(native, exact, all_of(residuals))
    if any(member.native is None for member in members):
        return _Translated(None, False, filter)
    should = [member.native for member in members if member.native is not None]
    return _Translated(models.Filter(should=should), exact, None if exact else filter)


def _translate_condition(condition: Condition, key: str) -> _Translated:
    operator, value = condition.operator, condition.value
    if operator == "exists":
        return _Translated(models.Filter(must_not=[_is_empty(key)]), True, None)
    if operator == "notExists":
        return _Translated(_is_empty(key), True, None)
    native: models.Condition | None = None
    if operator == "eq":
        native = _list_superset(key, value) if isinstance(value, list) else _element(key, value)
    elif operator == "in" and isinstance(value, list):
        native = _any_superset(key, value)
    elif operator in RANGE_OPERATORS and _is_exact_number(value):
        native = models.FieldCondition(key=key, range=models.Range(**{operator: float(value)}))
    elif operator == "contains" and not isinstance(value, str):
        native = _element(key, value)
    return _Translated(native, False, condition)


def _is_empty(key: str) -> models.IsEmptyCondition:
    return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))


def _is_exact_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, float) or abs(value) <= _EXACT_FLOAT_INTEGER


def _element(key: str, value: Any) -> models.Condition | None:
    """A superset of "the field, or one of its elements, equals `value`"."""
    if isinstance(value, str | bool):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    if _is_exact_number(value):
        # Range, not MatchValue: Qdrant's match keeps the integer 1 and the float 1.0 apart.
        bound = float(value)
        return models.FieldCondition(key=key, range=models.Range(gte=bound, lte=bound))
    return None


def _list_superset(key: str, value: list[Any]) -> models.Condition | None:
    """A superset of "the field is exactly this list": each element is among its elements."""
    if not value:
        return _is_empty(key)
    elements = [_element(key, item) for item in value]
    natives = [element for element in elements if element is not None]
    return models.Filter(must=natives) if natives else None


def _any_superset(key: str, values: list[Any]) -> models.Condition | None:
    """A superset of "the field equals one of `values`"."""
    strings = [value for value in values if isinstance(value, str)]
    should: list[models.Condition] = []
    if strings:
        should.append(models.FieldCondition(key=key, match=models.MatchAny(any=strings)))
    for value in values:
        if isinstance(value, str):
            continue
        element = _element(key, value)
        if element is None:
            return None
        should.append(element)
    return should[0] if len(should) == 1 else models.Filter(should=should)
