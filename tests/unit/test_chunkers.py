"""Chunkers: the size bound, exact `fixed` overlap, and coverage of every character, in order."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway_core.ingestion.chunkers import chunk
from gateway_core.ingestion.model import Chunk, ChunkerOptions, ParsedDocument, Section

STRATEGIES = ("fixed", "sentence", "paragraph", "recursive")
# Words, sentence ends, abbreviations, decimals, blank lines, odd whitespace and one
# word far longer than any chunk: the places where splitting goes wrong.
FRAGMENTS = st.sampled_from(
    [
        "word", "Dr.", "3.50", "e.g.", "U.S.A.", "end.", "why?", "yes!", " ", "  ", "\n",
        "\n\n", "\n \n\t", "\t", "\u00a0", "«quoted»", "naïve", "日本語。", "x" * 130,
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.lists(FRAGMENTS, max_size=200).map(" ".join),
    st.lists(FRAGMENTS, max_size=200).map("".join),
    st.text(max_size=600),
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def options(draw: st.DrawFn, strategy: str) -> ChunkerOptions:
    size = draw(st.integers(min_value=50, max_value=300))
    overlap = draw(st.integers(min_value=0, max_value=size - 1))
    return ChunkerOptions(strategy=strategy, chunk_size=size, chunk_overlap=overlap)


@st.composite
def documents(draw: st.DrawFn) -> ParsedDocument:
    """A text cut into sections at random points, with a heading path and page each."""
    text = draw(TEXTS)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    bounds = [0, *cuts, len(text)]
    sections = [
        Section(start=start, end=end, page=number + 1, heading_path=[f"H{number}"])
        for number, (start, end) in enumerate(itertools.pairwise(bounds))
        if start < end
    ]
    return ParsedDocument(text=text, sections=sections, format="markdown")


def _assert_well_formed(document: ParsedDocument, chunks: list[Chunk], size: int) -> None:
    text = document.text
    assert [piece.index for piece in chunks] == list(range(len(chunks)))
    for piece in chunks:
        assert 0 < len(piece.text) <= size
        assert piece.text == text[piece.start : piece.end]
        assert not piece.text.isspace()
    starts = [piece.start for piece in chunks]
    ends = [piece.end for piece in chunks]
    assert starts == sorted(set(starts)), "starts strictly increase"
    assert ends == sorted(set(ends)), "ends strictly increase"
    covered = [False] * len(text)
    for piece in chunks:
        covered[piece.start : piece.end] = [True] * (piece.end - piece.start)
    missing = [i for i, char in enumerate(text) if not char.isspace() and not covered[i]]
    assert missing == []


def _assert_overlap_at_most(chunks: list[Chunk], overlap: int) -> None:
    for before, after in itertools.pairwise(chunks):
        assert before.end - after.start <= overlap


@PROPERTY_SETTINGS
@given(document=documents(), chosen=options("fixed"))
def test_fixed_windows_are_exact(document: ParsedDocument, chosen: ChunkerOptions) -> None:
    chunks = chunk(document, chosen)
    _assert_well_formed(document, chunks, chosen.chunk_size)
    step = chosen.chunk_size - chosen.chunk_overlap
    length = len(document.text)
    for piece in chunks:
        assert piece.start % step == 0
        assert piece.end == min(piece.start + chosen.chunk_size, length)
    for before, after in itertools.pairwise(chunks):
        if after.start == before.start + step:  # neighbours (whitespace-only windows skipped)
            shared = before.end - after.start
            assert shared == chosen.chunk_overlap
            assert before.text[len(before.text) - shared :] == after.text[:shared]


@pytest.mark.parametrize("strategy", ["sentence", "paragraph", "recursive"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_packed_chunks_fit_cover_and_overlap_within_bound(
    strategy: str, data: st.DataObject
) -> None:
    document = data.draw(documents())
    chosen = data.draw(options(strategy))
    chunks = chunk(document, chosen)
    _assert_well_formed(document, chunks, chosen.chunk_size)
    _assert_overlap_at_most(chunks, chosen.chunk_overlap)
    for piece in chunks:
        assert piece.text == piece.text.strip()


@PROPERTY_SETTINGS
@given(document=documents(), chosen=options("recursive"))
def test_recursive_chunks_stay_in_their_section(
    document: ParsedDocument, chosen: ChunkerOptions
) -> None:
    for piece in chunk(document, chosen):
        [section] = [s for s in document.sections if s.start <= piece.start < s.end]
        assert piece.end <= section.end
        assert (piece.page, piece.heading_path) == (section.page, section.heading_path)


@PROPERTY_SETTINGS
@given(document=documents(), strategy=st.sampled_from(STRATEGIES))
def test_a_text_that_fits_is_one_chunk(document: ParsedDocument, strategy: str) -> None:
    chunks = chunk(document, ChunkerOptions(strategy=strategy, chunk_size=20_000))
    text = document.text
    if strategy == "recursive":  # one per section: a chunk never spans two
        bodies = [text[section.start : section.end].strip() for section in document.sections]
        expected = [body for body in bodies if body]
    else:  # `fixed` keeps the window as it is; the others trim it
        expected = [text if strategy == "fixed" else text.strip()] if text.strip() else []
    assert [piece.text for piece in chunks] == expected


LINUX_STEP = "Use the package manager to install it. "


def _markdown_like() -> ParsedDocument:
    parts = [
        ("# Guide\n\nWhat this guide is for.", ["Guide"]),
        ("## Install\n\nRun the installer. Then restart.", ["Guide", "Install"]),
        ("### Linux\n\n" + LINUX_STEP * 6, ["Guide", "Install", "Linux"]),
        ("## Usage\n\nCall it.", ["Guide", "Usage"]),
    ]  # fmt: skip
    text, sections = "", []
    for body, path in parts:
        start = len(text) + (2 if text else 0)
        text = f"{text}\n\n{body}" if text else body
        sections.append(Section(start=start, end=len(text), heading_path=path))
    return ParsedDocument(text=text, sections=sections, format="markdown")


def test_recursive_chunks_keep_the_heading_path_of_nested_sections() -> None:
    document = _markdown_like()
    chunks = chunk(document, ChunkerOptions(strategy="recursive", chunk_size=100, chunk_overlap=0))
    assert [(piece.heading_path, piece.text[:12]) for piece in chunks] == [
        (["Guide"], "# Guide\n\nWha"),
        (["Guide", "Install"], "## Install\n\n"),
        (["Guide", "Install", "Linux"], "### Linux\n\nU"),
        (["Guide", "Install", "Linux"], "Use the pack"),
        (["Guide", "Install", "Linux"], "Use the pack"),
        (["Guide", "Usage"], "## Usage\n\nCa"),
    ]
    assert all(len(piece.text) <= 100 for piece in chunks)


def test_paragraph_chunks_take_the_heading_path_where_they_start() -> None:
    document = _markdown_like()
    [whole] = chunk(document, ChunkerOptions(strategy="paragraph", chunk_size=5000))
    assert whole.heading_path == ["Guide"]
    assert whole.text == document.text


def test_pdf_like_chunks_carry_their_page() -> None:
    pages = [f"Page {number} says something. " * 8 for number in (1, 2, 3)]
    text = "\n\n".join(pages)
    sections, start = [], 0
    for number, page in enumerate(pages, start=1):
        sections.append(Section(start=start, end=start + len(page), page=number))
        start += len(page) + 2
    document = ParsedDocument(text=text, sections=sections, format="pdf")
    for strategy in STRATEGIES:
        chosen = ChunkerOptions(strategy=strategy, chunk_size=120, chunk_overlap=30)
        for piece in chunk(document, chosen):
            # the page it starts on; a `fixed` window starting between pages takes the next
            assert piece.page == next(s.page for s in sections if piece.start < s.end)
    recursive = chunk(document, ChunkerOptions(chunk_size=120, chunk_overlap=30))
    assert {piece.page for piece in recursive} == {1, 2, 3}
    assert all(f"Page {piece.page} " in piece.text for piece in recursive)


def test_sentences_survive_abbreviations_and_decimals() -> None:
    text = "Dr. Smith paid 3.50 USD. Mrs. Jones paid 4.25 EUR yesterday. It was e.g. fine."
    document = ParsedDocument(text=text, sections=[Section(start=0, end=len(text))], format="text")
    chunks = chunk(document, ChunkerOptions(strategy="sentence", chunk_size=50, chunk_overlap=0))
    assert [piece.text for piece in chunks] == [
        "Dr. Smith paid 3.50 USD.",
        "Mrs. Jones paid 4.25 EUR yesterday.",
        "It was e.g. fine.",
    ]


def test_sentence_overlap_is_whole_trailing_sentences() -> None:
    text = "One is short. Two is short. Three is here. Four is here. Five ends it."
    document = ParsedDocument(text=text, sections=[], format="text")
    chunks = chunk(document, ChunkerOptions(strategy="sentence", chunk_size=50, chunk_overlap=20))
    assert [piece.text for piece in chunks] == [
        "One is short. Two is short. Three is here.",
        "Three is here. Four is here. Five ends it.",
    ]


def test_an_overlong_sentence_is_split_by_words_then_characters() -> None:
    text = "alpha " * 30 + "z" * 120
    document = ParsedDocument(text=text, sections=[], format="text")
    chunks = chunk(document, ChunkerOptions(strategy="sentence", chunk_size=50, chunk_overlap=0))
    assert [piece.text for piece in chunks[:3]] == ["alpha " * 7 + "alpha"] * 3
    assert [piece.text for piece in chunks[-3:]] == ["z" * 50, "z" * 50, "z" * 20]


def test_overlap_not_below_size_is_refused() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap"):
        ChunkerOptions(chunk_size=100, chunk_overlap=100)
    unchecked = ChunkerOptions.model_construct(strategy="fixed", chunk_size=100, chunk_overlap=150)
    document = ParsedDocument(text="some text", sections=[], format="text")
    with pytest.raises(ValueError, match=r"chunk_overlap \(150\) must be smaller than chunk_size"):
        chunk(document, unchecked)


def test_empty_and_blank_texts_give_no_chunks() -> None:
    for text in ("", " \n\n\t "):
        document = ParsedDocument(text=text, sections=[], format="text")
        for strategy in STRATEGIES:
            assert chunk(document, ChunkerOptions(strategy=strategy)) == []


def _large_text(size: int) -> str:
    """Paragraphs of sentences, some paragraphs far longer than a chunk, about `size` chars."""
    rng = random.Random(15)
    words = ["alpha", "beta", "gamma", "delta", "Dr.", "3.50", "epsilon", "zeta"]
    paragraphs, total = [], 0
    while total < size:
        sentences = [
            " ".join(rng.choices(words, k=rng.randint(4, 20))).capitalize() + "."
            for _ in range(rng.choice((2, 5, 40)))
        ]
        paragraphs.append(" ".join(sentences))
        total += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_two_megabyte_text_is_chunked(strategy: str) -> None:
    text = _large_text(2_000_000)
    document = ParsedDocument(text=text, sections=[Section(start=0, end=len(text))], format="text")
    chunks = chunk(document, ChunkerOptions(strategy=strategy))
    assert all(len(piece.text) <= 1000 for piece in chunks)
    assert chunks[-1].end == len(text)
    assert sum(len(piece.text) for piece in chunks) >= len(text.replace("\n\n", ""))
