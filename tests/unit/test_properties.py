"""Property tests (hardening 8): the template parser and config import are total.

Whatever text or document arrives, they answer with a result or with their own 400
error (TemplateError, MissingVariablesError, ConfigError), never another exception, and
what they report is consistent with the input.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway_core.config_io import ConfigError, dump_yaml, load_document, parse_config
from gateway_core.errors import GatewayError
from gateway_core.templating import (
    MissingVariablesError,
    TemplateError,
    parse_template,
    render_variables,
)

CHARACTERS = st.characters(codec="utf-8")  # any character but lone surrogates
ANY_TEXT = st.text(CHARACTERS, max_size=300)
# Text dense in the template's own syntax, so openings, escapes and flaws are common.
TOKENS = st.sampled_from(["$", "{", "}", ":", "${var:", "$${", "${request:", "x", "-", "\n"])
TEMPLATE_TEXT = st.lists(st.one_of(TOKENS, CHARACTERS), max_size=60).map("".join)
VARIABLE_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), ANY_TEXT)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
SECTION_ENTRY = st.dictionaries(
    st.sampled_from(["id", "name", "provider", "model", "content", "steps", "base_url"]),
    JSON_VALUE,
    max_size=6,
)
SECTION = st.one_of(st.lists(SECTION_ENTRY, max_size=3), JSON_VALUE)
DOCUMENTS = st.one_of(
    JSON_VALUE,
    st.fixed_dictionaries(
        {"version": st.one_of(st.just(1), JSON_LEAF)},
        optional={"models": SECTION, "chains": SECTION, "prompts": SECTION},
    ),
)


def _outcome(call: Callable[[], Any]) -> Any:
    """The call's value, or the GatewayError it raised (anything else propagates)."""
    try:
        return call()
    except GatewayError as error:
        return error


@settings(max_examples=300)
@given(st.one_of(TEMPLATE_TEXT, ANY_TEXT))
def test_any_text_parses_or_names_each_problem_where_it_is(source: str) -> None:
    outcome = _outcome(lambda: parse_template(source))
    if isinstance(outcome, GatewayError):
        assert isinstance(outcome, TemplateError)
        assert outcome.status_code == 400
        for problem in outcome.problems:
            assert source.startswith("${", problem.offset)
            before = source[: problem.offset]
            assert problem.line == before.count("\n") + 1
            assert problem.column == problem.offset - (before.rfind("\n") + 1) + 1
        return
    assert outcome.source == source
    for placeholder in outcome.placeholders():
        assert source.startswith("${", placeholder.offset)


@settings(max_examples=300)
@given(TEMPLATE_TEXT, st.dictionaries(VARIABLE_NAMES, ANY_TEXT, max_size=5))
def test_a_parsed_template_renders_or_names_exactly_what_is_missing(
    source: str, values: dict[str, str]
) -> None:
    template = _outcome(lambda: parse_template(source))
    if isinstance(template, TemplateError):
        return
    needed = {
        p.name for p in template.placeholders("var") if p.default is None and p.name not in values
    }
    rendered = _outcome(lambda: render_variables(template, values))
    if needed:
        assert isinstance(rendered, MissingVariablesError)
        assert all(name in rendered.message for name in needed)
    else:
        assert isinstance(rendered, str)


@settings(max_examples=300)
@given(st.one_of(ANY_TEXT, st.binary(max_size=200)))
@example(b"\x80")  # found by this test: json.loads raised UnicodeDecodeError (a 500)
def test_any_document_text_loads_or_is_one_config_error(text: str | bytes) -> None:
    for json_only in (False, True):
        outcome = _outcome(partial(load_document, text, json_only=json_only))
        if isinstance(outcome, GatewayError):
            assert isinstance(outcome, ConfigError)
            assert outcome.status_code == 400


@settings(max_examples=300)
@given(DOCUMENTS)
def test_any_document_validates_or_lists_its_problems(document: Any) -> None:
    outcome = _outcome(lambda: parse_config(document))
    if isinstance(outcome, GatewayError):
        assert isinstance(outcome, ConfigError)
        assert outcome.status_code == 400
        assert outcome.problems
    else:
        assert isinstance(document, dict)


PROMPTS = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
            "name": ANY_TEXT.filter(str.strip),
            "content": TEMPLATE_TEXT.filter(str.strip),
        }
    ),
    max_size=4,
    unique_by=lambda prompt: prompt["id"],
)


@settings(max_examples=100)
@given(PROMPTS)
def test_prompts_import_the_same_after_an_export(prompts: list[dict[str, str]]) -> None:
    document = {"version": 1, "prompts": prompts}
    config = _outcome(lambda: parse_config(document))
    reloaded = _outcome(lambda: parse_config(load_document(dump_yaml(document))))
    if isinstance(config, GatewayError):
        assert isinstance(config, ConfigError)
        assert isinstance(reloaded, ConfigError)
        assert reloaded.problems == config.problems
    else:
        assert reloaded.prompts == config.prompts
