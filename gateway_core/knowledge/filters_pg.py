"""The filter language compiled to a parameterized SQL boolean over a jsonb column.

No value and no field name is ever spliced into the SQL text: every one travels as a
`%s` parameter. Every condition compiles to an expression that is TRUE or FALSE, never
NULL, so the negations (`ne`, `notIn`, `notExists`) hold for documents without the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

from psycopg import sql
from psycopg.types.json import Jsonb

from gateway_core.knowledge.filters import (
    NEGATIONS,
    OPERATORS,
    RANGE_OPERATORS,
    CapabilityTable,
    Condition,
    Filter,
    Operator,
    Support,
)

CAPABILITIES: CapabilityTable = {operator: Support("native") for operator in OPERATORS}

_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class PgFilter(NamedTuple):
    """A SQL boolean expression and the parameters of its `%s` placeholders, in order."""

    clause: sql.Composable
    params: list[Any]


@dataclass(frozen=True)
class _Param:
    """One parameter; `cast` is a fixed type name from this module, never caller input."""

    value: Any
    cast: str


# An expression as it is written: SQL text of this module, parameters, the column.
_Piece: TypeAlias = str | _Param | sql.Composable
_Expr: TypeAlias = list[_Piece]


def compile_pg(filter: Filter | None, column: str | sql.Composable = "metadata") -> PgFilter:
    """Compile a filter to (SQL boolean expression, parameters) over the jsonb `column`."""
    if filter is None:
        return PgFilter(sql.SQL("TRUE"), [])
    if isinstance(column, str):
        column = sql.Identifier(*column.split("."))
    return _render(_compile_node(filter, column))


def _render(expression: _Expr) -> PgFilter:
    """Placeholders and parameters in the order they appear in the text."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for piece in expression:
        if isinstance(piece, str):
            parts.append(sql.SQL(piece))
        elif isinstance(piece, _Param):
            parts.append(sql.SQL("%s::" + piece.cast))
            params.append(piece.value)
        else:
            parts.append(piece)
    return PgFilter(sql.Composed(parts), params)


def _compile_node(filter: Filter, column: sql.Composable) -> _Expr:
    if isinstance(filter, Condition):
        return _compile_condition(filter, column)
    joiner = " AND " if filter.connector == "and" else " OR "
    expression: _Expr = ["("]
    for index, member in enumerate(filter.filters):
        if index:
            expression.append(joiner)
        expression += _compile_node(member, column)
    return [*expression, ")"]


def _value_at(column: sql.Composable, path: tuple[str, ...]) -> _Expr:
    # `->` with a text key walks objects only (an array gives NULL), as `matches` does.
    expression: _Expr = ["(", column]
    for segment in path:
        expression += [" -> ", _Param(segment, "text")]
    return [*expression, ")"]


def _compile_condition(condition: Condition, column: sql.Composable) -> _Expr:
    value = _value_at(column, condition.path)
    negated = NEGATIONS.get(condition.operator)
    if negated is not None:
        return ["(NOT ", *_positive(negated, value, condition.value), ")"]
    return _positive(condition.operator, value, condition.value)


def _positive(operator: Operator, value: _Expr, wanted: Any) -> _Expr:
    """A condition that is never NULL: COALESCE turns a missing field into FALSE."""
    kind: _Expr = ["jsonb_typeof(", *value, ")"]
    text: _Expr = ["(", *value, " #>> '{}')"]
    expression: _Expr
    if operator == "exists":
        expression = [*kind, " <> 'null' AND ", *value, " <> '[]'::jsonb"]
    elif operator == "eq":
        expression = [*value, " = ", _Param(Jsonb(wanted), "jsonb")]
    elif operator == "in":
        items = [Jsonb(item) for item in wanted]
        expression = [*value, " = ANY(", _Param(items, "jsonb[]"), ")"]
    elif operator in RANGE_OPERATORS:
        expression = _ordered(operator, kind, value, text, wanted)
    elif operator == "contains":
        expression = _contains(kind, value, text, wanted)
    elif operator == "startsWith":
        expression = [*kind, " = 'string' AND starts_with(", *text, ", ", _Param(wanted, "text")]
        expression.append(")")
    else:  # endsWith; right() counts characters, as Python's len does
        length = _Param(len(wanted), "integer")
        expression = [*kind, " = 'string' AND right(", *text, ", ", length, ") = "]
        expression.append(_Param(wanted, "text"))
    return ["COALESCE((", *expression, "), FALSE)"]


def _ordered(operator: Operator, kind: _Expr, value: _Expr, text: _Expr, wanted: Any) -> _Expr:
    symbol = _COMPARISONS[operator]
    if isinstance(wanted, str):
        # COLLATE "C" orders by code point, as Python does, whatever the database's locale.
        bound = _Param(wanted, "text")
        comparison = [*text, f' COLLATE "C" {symbol} (', bound, ') COLLATE "C"']
        return ["CASE WHEN ", *kind, " = 'string' THEN ", *comparison, " ELSE FALSE END"]
    comparison = [*value, f" {symbol} ", _Param(Jsonb(wanted), "jsonb")]
    return ["CASE WHEN ", *kind, " = 'number' THEN ", *comparison, " ELSE FALSE END"]


def _contains(kind: _Expr, value: _Expr, text: _Expr, wanted: Any) -> _Expr:
    """A substring of a string field, or an element (by jsonb equality) of a list field."""
    in_list: _Expr = ["EXISTS (SELECT 1 FROM jsonb_array_elements(", *value, ") AS item(e)"]
    in_list += [" WHERE item.e = ", _Param(Jsonb(wanted), "jsonb"), ")"]
    expression: _Expr = ["CASE ", *kind, " WHEN 'array' THEN ", *in_list]
    if isinstance(wanted, str):
        expression += [" WHEN 'string' THEN strpos(", *text, ", ", _Param(wanted, "text"), ") > 0"]
    return [*expression, " ELSE FALSE END"]
