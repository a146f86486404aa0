"""The ${var:...} template grammar: parsing, positions of bad placeholders, rendering."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_core.domain.prompts import PromptVariable, prompt_variables, render_content
from gateway_core.errors import InvalidRequestError
from gateway_core.templating import (
    MissingVariablesError,
    Placeholder,
    Segment,
    TemplateError,
    escape_literal,
    parse_template,
    render_variables,
    to_source,
)


def render(source: str, **variables: str) -> str:
    return render_variables(parse_template(source), variables)


def problems_of(source: str) -> list[tuple[str, int, int, int]]:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    return [(p.text, p.offset, p.line, p.column) for p in caught.value.problems]


def test_issue_example_fills_default_and_given_value() -> None:
    source = "You help with ${var:product:our product}. Be ${var:tone}."
    assert render(source, tone="brief") == "You help with our product. Be brief."
    assert render(source, tone="brief", product="X") == "You help with X. Be brief."


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("${var:url:http://example.com:8080/a b}", "http://example.com:8080/a b"),
        ("${var:time:12:30 : noon}", "12:30 : noon"),
        ("${var:x:  padded  }", "  padded  "),
        ("${var:x:}", ""),
        ("${var:greeting:¡Hola, señor! 你好 👋}", "¡Hola, señor! 你好 👋"),
        ("${var:multi:line one\nline two}", "line one\nline two"),
        ("${var:dollar:$5 $$}", "$5 $$"),
    ],
)
def test_defaults_keep_colons_spaces_unicode_and_dollars(source: str, expected: str) -> None:
    assert render(source) == expected


def test_names_may_use_letters_digits_and_hyphens() -> None:
    assert render("${var:user-Name-2}", **{"user-Name-2": "Ann"}) == "Ann"
    assert render("${var:2nd}", **{"2nd": "B"}) == "B"


def test_missing_variables_are_all_named_once_in_order() -> None:
    with pytest.raises(MissingVariablesError) as caught:
        render("${var:b} ${var:a} ${var:b} ${var:c:has default}")
    assert caught.value.names == ["b", "a"]
    assert caught.value.status_code == 400
    assert caught.value.param == "variables"
    assert "b, a" in caught.value.message


def test_a_value_wins_over_the_default_and_an_empty_value_is_a_value() -> None:
    assert render("[${var:x:fallback}]", x="") == "[]"
    assert render("[${var:x:fallback}]", x="set") == "[set]"


def test_values_are_inserted_verbatim_and_never_rendered_again() -> None:
    assert render("${var:a}", a="${var:b} $${") == "${var:b} $${"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("$${var:x}", "${var:x}"),  # the escape: a literal ${
        ("$$${var:x}", "$X"),  # a literal $ right before a placeholder
        ("$$$${", "$${"),
        ("price: $5, $$ and $", "price: $5, $$ and $"),  # no brace: dollars stay as written
        ("$$x^2$$ and {braces} and }", "$$x^2$$ and {braces} and }"),
        ("${var:x}${var:x}", "XX"),
        ("", ""),
    ],
)
def test_escapes_and_literal_dollars(source: str, expected: str) -> None:
    assert render(source, x="X") == expected


@pytest.mark.parametrize(
    ("source", "text", "column", "reason"),
    [
        ("Hi ${var:name", "${var:name", 4, "no closing `}`"),
        ("Hi ${var:bad name}!", "${var:bad name}", 4, "`bad name` is not a valid name"),
        ("Hi ${var:}!", "${var:}", 4, "the name is empty"),
        ("Hi ${var:-x}!", "${var:-x}", 4, "`-x` is not a valid name"),
        ("Hi ${var:ünï}!", "${var:ünï}", 4, "`ünï` is not a valid name"),
        ("Hi ${name}!", "${name}", 4, "needs a namespace"),
        ("Hi ${}!", "${}", 4, "needs a namespace"),
        ("Hi ${request:user}!", "${request:user}", 4, "unknown namespace `request`"),
        ("Hi ${ var:x}!", "${ var:x}", 4, "unknown namespace ` var`"),
        ("${var:a ${var:b}}", "${var:a ${var:b}", 1, "placeholders do not nest"),
        ("${var:x:{json}}", "${var:x:{json}", 1, "contains `{`"),
        ("$$$$${var:x", "${var:x", 5, "no closing `}`"),
    ],
)
def test_malformed_placeholder_is_named_with_its_position(
    source: str, text: str, column: int, reason: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    [problem] = caught.value.problems
    assert (problem.text, problem.line, problem.column) == (text, 1, column)
    assert reason in problem.reason
    error = caught.value
    assert isinstance(error, InvalidRequestError) and error.status_code == 400
    assert error.param == "content" and error.code == "invalid_template"
    assert f"`{text}` at line 1, column {column}" in error.message


def test_every_bad_placeholder_is_reported_with_line_and_column() -> None:
    source = "First ${var:ok}\n  second ${var:no good}\nthird ${x} and ${var:y:fine}"
    assert problems_of(source) == [
        ("${var:no good}", 25, 2, 10),
        ("${x}", 46, 3, 7),
    ]


def test_columns_count_characters_not_bytes() -> None:
    assert problems_of("日本語 ✓ ${var:}") == [("${var:}", 6, 1, 7)]


def test_very_long_content_renders_and_reports_late_problems() -> None:
    line = "Σ lorem ipsum ${var:word:default} dolor $${literal} sit amet.\n"
    source = line * 20_000
    rendered = render(source, word="W")
    assert rendered == "Σ lorem ipsum W dolor ${literal} sit amet.\n" * 20_000
    assert len(parse_template(source).placeholders()) == 20_000
    [(text, _offset, line_number, column)] = problems_of(source + "end ${var:" + "x" * 500)
    assert (line_number, column) == (20_001, 5)
    assert text.endswith("…") and len(text) == 80


def test_long_dollar_runs_take_linear_time() -> None:
    source = "$" * 200_000 + "{" + "$" * 200_000
    started = time.perf_counter()
    assert render_variables(parse_template(source), {}) == "$" * 100_000 + "{" + "$" * 200_000
    assert escape_literal(source, before_placeholder=True).count("$") == 800_000
    assert time.perf_counter() - started < 2  # a quadratic scan takes minutes here


def test_many_problems_are_listed_with_a_count() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("${bad} " * 30)
    assert len(caught.value.problems) == 30
    assert caught.value.message.startswith("content has 30 invalid placeholders:")
    assert caught.value.message.endswith("and 10 more")


def test_prompt_variables_say_which_need_a_value() -> None:
    content = "${var:a} ${var:b:x} ${var:c:y} ${var:c} ${var:a:z}"
    assert prompt_variables(content) == [
        PromptVariable(name="a", default="z", required=True),
        PromptVariable(name="b", default="x", required=False),
        PromptVariable(name="c", default="y", required=True),
    ]


def test_json_values_render_as_json_writes_them() -> None:
    content = "${var:n} ${var:f} ${var:t} ${var:s}"
    assert render_content(content, {"n": 3, "f": 0.5, "t": True, "s": "s"}) == "3 0.5 true s"


# --- properties --------------------------------------------------------------------

# Literal text built from the pieces the grammar cares about, so `${` and `$$` are common.
PIECES = ["$", "$$", "${", "{", "}", ":", "var:", "-", " ", "\n", "\\", "é", "漢", "🙂", "a"]
literal_text = st.lists(
    st.sampled_from(PIECES) | st.characters(blacklist_categories=("Cs",)), max_size=15
).map("".join)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,12}", fullmatch=True)
defaults = st.none() | st.text(
    alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=20
)
placeholders = st.builds(Placeholder, namespace=st.just("var"), name=names, default=defaults)
segment_lists = st.lists(st.one_of(literal_text, placeholders), max_size=12)


def _merged(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        if isinstance(segment, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + segment
        elif segment != "":
            merged.append(segment)
    return merged


def _oracle(segments: list[Segment], values: dict[str, str]) -> str:
    out = []
    for segment in segments:
        if isinstance(segment, str):
            out.append(segment)
        else:
            value = values.get(segment.name, segment.default)
            out.append("" if value is None else value)
    return "".join(out)


@given(literal_text)
def test_any_text_escaped_renders_back_to_itself(text: str) -> None:
    template = parse_template(escape_literal(text))
    assert template.placeholders() == []
    assert render_variables(template, {}) == text


@given(segment_lists)
def test_writing_segments_as_source_and_parsing_gives_them_back(segments: list[Segment]) -> None:
    source = to_source(segments)
    assert list(parse_template(source).segments) == _merged(segments)
    assert to_source(parse_template(source).segments) == source


@given(segment_lists, st.dictionaries(names, literal_text, max_size=6))
def test_render_then_reparse_is_stable(segments: list[Segment], values: dict[str, str]) -> None:
    template = parse_template(to_source(segments))
    needed = {p.name: "" for p in template.placeholders() if p.default is None}
    values = needed | values
    rendered = render_variables(template, values)
    assert rendered == _oracle(segments, values)
    # The rendered text, escaped, is a template without placeholders that renders to itself,
    reparsed = parse_template(escape_literal(rendered))
    assert reparsed.placeholders() == [] and render_variables(reparsed, {}) == rendered
    # and rendering the re-written source of the template gives the same text again.
    rewritten = parse_template(to_source(template.segments))
    assert render_variables(rewritten, values) == rendered


@given(st.text(alphabet=st.sampled_from(list("${}:var-x 1\n")), max_size=60))
def test_arbitrary_text_parses_or_names_problems_at_an_opening(source: str) -> None:
    try:
        parse_template(source)
    except TemplateError as error:
        for problem in error.problems:
            assert source.startswith("${", problem.offset)
            assert source[: problem.offset].count("\n") + 1 == problem.line
