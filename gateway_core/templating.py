"""Template text with `${namespace:name}` and `${namespace:name:default}` placeholders.

Grammar (a placeholder runs from `${` to the first `}`):

    placeholder = "${" namespace ":" name [ ":" default ] "}"
    namespace   = lowercase letters: `var` (prompts), `request` and `step` (workflows,
                  gateway_core.userflows); each caller says which it accepts
    name        = for `var`: ASCII letters, digits and hyphens, not starting with a hyphen;
                  for `request`: a dotted field path (`user.name`, `documents.0`);
                  for `step`: a step name, `:`, and a dotted field path
    default     = any text without `{` or `}` (colons, spaces and unicode are fine);
                  `${var:x:}` has the empty text as its default

Escape: in front of `{`, `$$` stands for one literal `$`. So `$${` is a literal `${`, and
`$$${var:price}` is a literal `$` followed by the value of `price`. A `$` that is not
part of a run of dollars right before `{` is always literal, so `$$` in LaTeX or prices
without a brace after it is left as it is.

Rendering is one pass: values are inserted as they are and never scanned again.
Positions are 0-based character offsets, reported also as 1-based line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway_core.errors import InvalidRequestError

VAR = "var"
REQUEST = "request"
STEP = "step"
_FIELD_PATH = r"[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    VAR: re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*"),
    REQUEST: re.compile(_FIELD_PATH),
    STEP: re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_-]*:{_FIELD_PATH}"),
}
NAME_RULES: dict[str, str] = {
    VAR: "letters, digits and hyphens, not starting with a hyphen",
    REQUEST: "a field path of letters, digits, `_` and `-` parts joined by dots",
    STEP: "a step name, `:` and a field path, as in `search:documents.0.content`",
}
# How many `:`-separated parts a name has; the part after them is the default.
NAME_PARTS: dict[str, int] = {STEP: 2}
RENDERED_NAMESPACES: frozenset[str] = frozenset({VAR})

# The lookbehind starts a match only at the first `$` of a run, keeping long runs linear.
_DOLLARS_BEFORE_BRACE = re.compile(r"(?<!\$)\$+(?=\{)")
_TRAILING_DOLLARS = re.compile(r"(?<!\$)\$+\Z")
_SHOWN_CHARS = 80
_MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `${namespace:name[:default]}`; `offset` is where its `$` stands in the source."""

    namespace: str
    name: str
    default: str | None = None
    offset: int = field(default=0, compare=False)

    @property
    def source(self) -> str:
        """The placeholder as it is written in a template."""
        tail = "" if self.default is None else f":{self.default}"
        return f"${{{self.namespace}:{self.name}{tail}}}"


Segment = str | Placeholder


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text (escapes resolved) and placeholders, in order."""

    source: str
    segments: tuple[Segment, ...]

    def placeholders(self, namespace: str | None = None) -> list[Placeholder]:
        """The placeholders, optionally only those of one namespace, in source order."""
        return [
            segment
            for segment in self.segments
            if isinstance(segment, Placeholder)
            and (namespace is None or segment.namespace == namespace)
        ]


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why one placeholder is invalid and where it is."""

    text: str
    offset: int
    line: int
    column: int
    reason: str

    def describe(self) -> str:
        return f"`{self.text}` at line {self.line}, column {self.column}: {self.reason}"


class TemplateError(InvalidRequestError):
    """A template has invalid placeholders; the message names each one and its position."""

    default_code = "invalid_template"

    def __init__(self, problems: Sequence[TemplateProblem], *, param: str = "content") -> None:
        shown = "; ".join(problem.describe() for problem in problems[:_MAX_PROBLEMS_SHOWN])
        if len(problems) > _MAX_PROBLEMS_SHOWN:
            shown += f"; and {len(problems) - _MAX_PROBLEMS_SHOWN} more"
        count = len(problems)
        noun = "an invalid placeholder" if count == 1 else f"{count} invalid placeholders"
        super().__init__(f"{param} has {noun}: {shown}", param=param)
        self.problems = list(problems)


class MissingVariablesError(InvalidRequestError):
    """Rendering needs values for these variables, which have no default."""

    default_code = "missing_variables"

    def __init__(
        self, names: Sequence[str], *, param: str = "variables", context: str | None = None
    ) -> None:
        message = f"missing values for variables without a default: {', '.join(names)}"
        super().__init__(f"{context}: {message}" if context else message, param=param)
        self.names = list(names)


def parse_template(source: str, namespaces: Collection[str] = RENDERED_NAMESPACES) -> Template:
    """Split `source` into literals and placeholders; TemplateError lists every bad one."""
    segments: list[Segment] = []
    flaws: list[_Flaw] = []
    literal: list[str] = []
    position = 0
    while (brace := source.find("${", position) + 1) > 0:
        run_start = brace - 1
        while run_start > position and source[run_start - 1] == "$":
            run_start -= 1
        dollars = brace - run_start
        literal.append(source[position:run_start] + "$" * (dollars // 2))
        position = brace + 1
        if dollars % 2 == 0:
            literal.append("{")
            continue
        close = source.find("}", position)
        found = _placeholder(source, brace - 1, close, namespaces)
        if isinstance(found, _Flaw):
            flaws.append(found)
        else:
            segments.extend(_literal_segment(literal))
            segments.append(found)
        position = len(source) if close == -1 else close + 1
    literal.append(source[position:])
    segments.extend(_literal_segment(literal))
    if flaws:
        raise TemplateError(_located(source, flaws))
    return Template(source, tuple(segments))


def _literal_segment(pieces: list[str]) -> list[Segment]:
    """Join and clear the pending literal pieces; nothing when they are empty."""
    text = "".join(pieces)
    pieces.clear()
    return [text] if text else []


class _Flaw(NamedTuple):
    """An invalid placeholder between `start` and `end`, before its line is counted."""

    start: int
    end: int
    reason: str


def _placeholder(
    source: str, opening: int, close: int, namespaces: Collection[str]
) -> Placeholder | _Flaw:
    """The placeholder opening at `opening` (its `}` at `close`, -1 if none), or its problem."""
    if close == -1:
        return _Flaw(opening, len(source), "has no closing `}`")
    body = source[opening + 2 : close]
    if "{" in body:
        reason = "contains `{`: placeholders do not nest; write `$${` for a literal `${`"
        return _Flaw(opening, close + 1, reason)
    namespace, colon, rest = body.partition(":")
    if not colon:
        return _Flaw(opening, close + 1, "needs a namespace, as in `${var:name}`")
    if namespace not in namespaces or namespace not in NAME_PATTERNS:
        known = ", ".join(sorted(namespaces))
        reason = f"unknown namespace `{namespace}` (supported here: {known})"
        return _Flaw(opening, close + 1, reason)
    parts = NAME_PARTS.get(namespace, 1)
    pieces = rest.split(":", parts)
    name = ":".join(pieces[:parts])
    default = pieces[parts] if len(pieces) > parts else None
    if not NAME_PATTERNS[namespace].fullmatch(name):
        what = "the name is empty" if not name else f"`{name}` is not a valid name"
        reason = f"{what} (names are {NAME_RULES[namespace]})"
        return _Flaw(opening, close + 1, reason)
    return Placeholder(namespace, name, default, opening)


def _located(source: str, flaws: list[_Flaw]) -> list[TemplateProblem]:
    """Problems with line and column, counted in one pass over the (ordered) flaws."""
    problems = []
    line, line_start, counted = 1, 0, 0
    for flaw in flaws:
        line += source.count("\n", counted, flaw.start)
        last_newline = source.rfind("\n", counted, flaw.start)
        if last_newline != -1:
            line_start = last_newline + 1
        counted = flaw.start
        text = source[flaw.start : flaw.end]
        if len(text) > _SHOWN_CHARS:
            text = text[: _SHOWN_CHARS - 1] + "…"
        column = flaw.start - line_start + 1
        problems.append(TemplateProblem(text, flaw.start, line, column, flaw.reason))
    return problems


def substitute(template: Template, lookup: Callable[[Placeholder], str | None]) -> str:
    """Replace each placeholder by `lookup`'s value or its default; one pass, no re-scan."""
    parts: list[str] = []
    missing: list[str] = []
    for segment in template.segments:
        if isinstance(segment, str):
            parts.append(segment)
            continue
        value = lookup(segment)
        if value is None:
            value = segment.default
        if value is None:
            if segment.name not in missing:
                missing.append(segment.name)
            continue
        parts.append(value)
    if missing:
        raise MissingVariablesError(missing)
    return "".join(parts)


def render_variables(template: Template, variables: Mapping[str, str]) -> str:
    """Fill `${var:...}` placeholders; MissingVariablesError names all without a value."""
    return substitute(
        template, lambda found: variables.get(found.name) if found.namespace == VAR else None
    )


def escape_literal(text: str, *, before_placeholder: bool = False) -> str:
    """Template source that renders to exactly `text` (double each `$` run before `{`)."""
    escaped = _DOLLARS_BEFORE_BRACE.sub(lambda run: run.group() * 2, text)
    if before_placeholder:
        escaped = _TRAILING_DOLLARS.sub(lambda run: run.group() * 2, escaped)
    return escaped


def to_source(segments: Sequence[Segment]) -> str:
    """Write segments back as template source; parsing it gives the same segments."""
    merged = _merge_literals(segments)
    written: list[str] = []
    for index, segment in enumerate(merged):
        if isinstance(segment, Placeholder):
            written.append(segment.source)
            continue
        following = merged[index + 1] if index + 1 < len(merged) else None
        written.append(
            escape_literal(segment, before_placeholder=isinstance(following, Placeholder))
        )
    return "".join(written)


def _merge_literals(segments: Sequence[Segment]) -> list[Segment]:
    """Adjacent literals joined, so an escape never spans two of them."""
    merged: list[Segment] = []
    for segment in segments:
        previous = merged[-1] if merged else None
        if isinstance(segment, str) and isinstance(previous, str):
            merged[-1] = previous + segment
        elif segment != "":
            merged.append(segment)
    return merged
