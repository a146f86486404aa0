"""Placeholders in step fields: `${request:path[:default]}` and `${step:name:path[:default]}`.

`request` reads the execution input, `step` the output of a step that already ran. A path
is dotted and may index lists (`documents.0.content`). The grammar, the `$${` escape and
the error positions are gateway_core.templating's; this module gives values their types:

- a placeholder that is the whole value keeps its JSON type (a list stays a list); its
  default, text in the source, is read as JSON when it parses (`${request:top_k:5}` is 5)
  and as text otherwise;
- inside a string, a list of documents (objects with `content`) renders as their contents
  separated by blank lines, a string as it is, anything else as JSON;
- resolution walks dicts and lists, resolving every string inside.

Pure and deterministic: the workflow interpreter runs this in workflow code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from gateway_core.errors import InvalidRequestError
from gateway_core.templating import REQUEST, STEP, Placeholder, Template, parse_template

NAMESPACES: Final = frozenset({REQUEST, STEP})


class _Missing:
    """The value of a path that leads nowhere (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class MissingValueError(InvalidRequestError):
    """Placeholders with neither a value nor a default; the message names each one."""

    default_code = "missing_variable"

    def __init__(self, placeholders: Sequence[Placeholder], *, param: str) -> None:
        names = ", ".join(f"`{placeholder.source}`" for placeholder in placeholders)
        super().__init__(f"{param}: no value and no default for {names}", param=param)
        self.placeholders = list(placeholders)


@dataclass(frozen=True)
class Scope:
    """What placeholders read: the execution input and the outputs of steps that ran."""

    request: Mapping[str, Any]
    steps: Mapping[str, Any] = field(default_factory=dict)

    def with_step(self, name: str, output: Any) -> Scope:
        """A new scope in which step `name` has `output` (the old one is unchanged)."""
        return Scope(self.request, {**self.steps, name: output})


@lru_cache(maxsize=2048)
def parse_text(text: str) -> Template:
    """`text` as a template of request and step placeholders (TemplateError if invalid)."""
    return parse_template(text, NAMESPACES)


def whole_placeholder(text: str) -> Placeholder | None:
    """The placeholder when it is all of `text`, else None."""
    segments = parse_text(text).segments
    if len(segments) == 1 and isinstance(segments[0], Placeholder):
        return segments[0]
    return None


def step_reference(placeholder: Placeholder) -> tuple[str, str]:
    """A `${step:...}` placeholder's step name and field path."""
    step_name, _, path = placeholder.name.partition(":")
    return step_name, path


def lookup_path(value: Any, path: str) -> Any:
    """The value at a dotted path (list items by index), or MISSING."""
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def lookup(placeholder: Placeholder, scope: Scope) -> Any:
    """The placeholder's value in `scope` (its default not applied), or MISSING."""
    if placeholder.namespace == REQUEST:
        return lookup_path(scope.request, placeholder.name)
    step_name, path = step_reference(placeholder)
    if step_name not in scope.steps:
        return MISSING
    return lookup_path(scope.steps[step_name], path)


def typed_default(default: str) -> Any:
    """A whole-value placeholder's default: its JSON value when it parses, else the text."""
    try:
        return json.loads(default)
    except ValueError:
        return default


def render_text(value: Any) -> str:
    """How a value reads inside a string (documents by content, others as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(item, Mapping) and "content" in item for item in value
    ):
        return "\n\n".join(render_text(item["content"]) for item in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def resolve_reference(text: str, scope: Scope) -> Any:
    """A whole placeholder's value, its default, or MISSING (conditions test for absence)."""
    placeholder = whole_placeholder(text)
    if placeholder is None:
        raise InvalidRequestError(f"`{text}` is not one placeholder", code="invalid_reference")
    value = lookup(placeholder, scope)
    if value is MISSING and placeholder.default is not None:
        return typed_default(placeholder.default)
    return value


def resolve_value(value: Any, scope: Scope, *, param: str = "value") -> Any:
    """`value` with every placeholder replaced, recursively; MissingValueError names all
    placeholders that have neither a value nor a default."""
    missing: list[Placeholder] = []
    resolved = _resolve(value, scope, missing)
    if missing:
        raise MissingValueError(missing, param=param)
    return resolved


def _resolve(value: Any, scope: Scope, missing: list[Placeholder]) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, scope, missing)
    if isinstance(value, Mapping):
        return {key: _resolve(item, scope, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, scope, missing) for item in value]
    return value


def _resolve_text(text: str, scope: Scope, missing: list[Placeholder]) -> Any:
    if "${" not in text:
        return text
    template = parse_text(text)
    whole = whole_placeholder(text)
    if whole is not None:
        found = lookup(whole, scope)
        if found is not MISSING:
            return found
        if whole.default is not None:
            return typed_default(whole.default)
        missing.append(whole)
        return None
    parts: list[str] = []
    for segment in template.segments:
        if isinstance(segment, str):
            parts.append(segment)
            continue
        found = lookup(segment, scope)
        if found is not MISSING:
            parts.append(render_text(found))
        elif segment.default is not None:
            parts.append(segment.default)
        elif segment not in missing:
            missing.append(segment)
    return "".join(parts)


def placeholders_in(value: Any) -> list[tuple[str, Placeholder]]:
    """Every placeholder inside `value` (strings in dicts and lists), each with its path
    below `value` ("" for `value` itself, ".key", "[0]"); TemplateError on a bad one."""
    found: list[tuple[str, Placeholder]] = []
    if isinstance(value, str):
        if "${" in value:
            found.extend(("", placeholder) for placeholder in parse_text(value).placeholders())
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found.extend((f".{key}{path}", p) for path, p in placeholders_in(item))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend((f"[{index}]{path}", p) for path, p in placeholders_in(item))
    return found
