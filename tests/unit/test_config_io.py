"""Configuration documents: YAML that reads back exactly, and validation that lists all."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway_core.config_io import ConfigError, dump_yaml, load_document, parse_config

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@given(st.lists(TEXT, max_size=4), TEXT)
def test_any_text_survives_a_yaml_round_trip(lines: list[str], name: str) -> None:
    content = "\n".join(lines) or "x"
    document = {"version": 1, "prompts": [{"id": "p", "name": name, "content": content}]}
    assert yaml.safe_load(dump_yaml(document)) == document


def test_multi_line_text_is_written_as_a_literal_block() -> None:
    text = dump_yaml({"content": "first ${var:x}\nsecond\n"})
    assert text == "content: |\n  first ${var:x}\n  second\n"


def test_json_documents_load_as_yaml_too() -> None:
    assert load_document('{"version": 1, "models": []}') == {"version": 1, "models": []}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "must be a mapping"),
        ({"models": []}, "version: must be 1, got None"),
        ({"version": 1, "models": {}}, "models: must be a list"),
        ({"version": 1, "prompts": ["text"]}, "prompts[0]: Input should be a valid dictionary"),
    ],
)
def test_document_shape_problems_are_named(document: object, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert problem in caught.value.message
    assert caught.value.status_code == 400


def test_a_valid_document_gives_its_entries_in_order() -> None:
    config = parse_config(
        {
            "version": 1,
            "models": [{"id": "b", "provider": "openai", "model": "m"}],
            "prompts": [
                {"id": "z", "name": "Z", "content": "${var:a}"},
                {"id": "y", "name": "Y", "content": "y"},
            ],
        }
    )
    assert [m.id for m in config.models] == ["b"]
    assert [p.id for p in config.prompts] == ["z", "y"]
