"""Chunkers: a parsed document's text split into pieces of at most `chunk_size` characters.

Every strategy works on spans — (start, end) offsets into `ParsedDocument.text` — never on
edited copies, so a chunk's text is always `text[start:end]`. Splitting partitions a span
at cut points and trims whitespace off each part, so no other character is ever lost.

- `fixed`: windows of `chunk_size` characters, each starting `chunk_size - chunk_overlap`
  after the previous; windows holding only whitespace are skipped.
- `sentence`: syntok sentences packed greedily; an over-long sentence is split by words,
  then characters.
- `paragraph`: blank-line paragraphs packed greedily; an over-long paragraph falls back to
  sentences, then words, then characters.
- `recursive`: each section on its own (a chunk never spans two), then as `paragraph`.

Packing overlaps neighbouring chunks by whole trailing pieces (sentences, paragraphs,
words) of at most `chunk_overlap` characters in all.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Sequence

from syntok import segmenter  # type: ignore[import-untyped]

from gateway_core.ingestion.model import (
    Chunk,
    ChunkerOptions,
    ParsedDocument,
    Section,
    refuse_overlap_not_below_size,
)

Span = tuple[int, int]
# A splitter partitions text[start:end] into consecutive spans (untrimmed).
Splitter = Callable[[str, Span], list[Span]]

# A blank line: a line break, then only spaces up to the next line break.
_BLANK_LINES = re.compile(r"\n[^\S\n]*\n\s*")
_WORD = re.compile(r"\S+")


def chunk(document: ParsedDocument, options: ChunkerOptions) -> list[Chunk]:
    """Pieces of at most `options.chunk_size` characters, in order, covering the text."""
    size, overlap = options.chunk_size, options.chunk_overlap
    # Options built without validation (model_construct) are held to the same rule.
    refuse_overlap_not_below_size(size, overlap)
    text = document.text
    sections = _ordered_sections(document.sections, len(text))
    if options.strategy == "fixed":
        spans = _fixed_windows(text, size, overlap)
    elif options.strategy == "sentence":
        spans = _pack(_fit(text, (0, len(text)), (_sentences, _words), size), size, overlap)
    elif options.strategy == "paragraph":
        pieces = _fit(text, (0, len(text)), (_paragraphs, _sentences, _words), size)
        spans = _pack(pieces, size, overlap)
    else:
        spans = _recursive_spans(text, sections, size, overlap)
    return _chunks(text, spans, sections)


def _fixed_windows(text: str, size: int, overlap: int) -> list[Span]:
    step = size - overlap
    windows: list[Span] = []
    for start in range(0, len(text), step):
        end = min(start + size, len(text))
        if not text[start:end].isspace():
            windows.append((start, end))
        if end == len(text):
            break
    return windows


def _recursive_spans(text: str, sections: list[Section], size: int, overlap: int) -> list[Span]:
    spans: list[Span] = []
    for region in _regions(sections, len(text)):
        pieces = _fit(text, region, (_paragraphs, _sentences, _words), size)
        spans.extend(_pack(pieces, size, overlap))
    return spans


def _regions(sections: list[Section], length: int) -> list[Span]:
    """The sections, and between them any text no section claims (kept, never dropped)."""
    regions: list[Span] = []
    position = 0
    for section in sections:
        if section.start > position:
            regions.append((position, section.start))
        regions.append((section.start, section.end))
        position = section.end
    if position < length:
        regions.append((position, length))
    return regions


def _fit(text: str, span: Span, splitters: Sequence[Splitter], size: int) -> list[Span]:
    """Trimmed pieces of `span` of at most `size`, split by the first splitter that helps."""
    trimmed = _trimmed(text, span)
    if trimmed is None:
        return []
    if trimmed[1] - trimmed[0] <= size:
        return [trimmed]
    if not splitters:
        return _fit_characters(text, trimmed, size)
    pieces: list[Span] = []
    for part in splitters[0](text, trimmed):
        pieces.extend(_fit(text, part, splitters[1:], size))
    return pieces


def _fit_characters(text: str, span: Span, size: int) -> list[Span]:
    start, end = span
    pieces = (_trimmed(text, (cut, min(cut + size, end))) for cut in range(start, end, size))
    return [piece for piece in pieces if piece is not None]


def _trimmed(text: str, span: Span) -> Span | None:
    """`span` without its leading and trailing whitespace; None if nothing else is left."""
    start, end = span
    piece = text[start:end]
    without_leading = piece.lstrip()
    if not without_leading:
        return None
    start += len(piece) - len(without_leading)
    end -= len(without_leading) - len(without_leading.rstrip())
    return start, end


def _partition(span: Span, cuts: list[int]) -> list[Span]:
    start, end = span
    bounds = [start, *sorted({cut for cut in cuts if start < cut < end}), end]
    return list(itertools.pairwise(bounds))


def _paragraphs(text: str, span: Span) -> list[Span]:
    cuts = [match.end() for match in _BLANK_LINES.finditer(text, span[0], span[1])]
    return _partition(span, cuts)


def _sentences(text: str, span: Span) -> list[Span]:
    # syntok ends sentences at blank lines anyway, but given a whole long document at
    # once it slows down more than linearly (2 MB: ~30 s against ~3 s paragraph by
    # paragraph), so it is given one paragraph at a time.
    cuts: list[int] = []
    for start, end in _paragraphs(text, span):
        cuts.append(start)
        # Token offsets are relative to the string given; a sentence starts at its
        # first token. Only cut points are taken from syntok, so whatever it does with
        # unusual input, the parts still cover the span exactly.
        cuts.extend(
            start + int(sentence[0].offset)
            for paragraph in segmenter.analyze(text[start:end])
            for sentence in paragraph
            if sentence
        )
    return _partition(span, cuts)


def _words(text: str, span: Span) -> list[Span]:
    cuts = [match.start() for match in _WORD.finditer(text, span[0], span[1])]
    return _partition(span, cuts)


def _pack(pieces: list[Span], size: int, overlap: int) -> list[Span]:
    """Consecutive pieces joined greedily into spans of at most `size` characters."""
    spans: list[Span] = []
    first = 0
    while first < len(pieces):
        last = first
        while last + 1 < len(pieces) and pieces[last + 1][1] - pieces[first][0] <= size:
            last += 1
        spans.append((pieces[first][0], pieces[last][1]))
        if last + 1 == len(pieces):
            break
        first = _next_first_piece(pieces, first, last, size, overlap)
    return spans


def _next_first_piece(pieces: list[Span], first: int, last: int, size: int, overlap: int) -> int:
    """Where the next span starts: as many whole trailing pieces as the overlap allows.

    The next span must still take in the piece after `last` within `size`, so it always
    starts after `first` and packing moves forward.
    """
    following_end = pieces[last + 1][1]
    start = last + 1
    while start - 1 > first:
        candidate = pieces[start - 1][0]
        if pieces[last][1] - candidate > overlap or following_end - candidate > size:
            break
        start -= 1
    return start


def _ordered_sections(sections: list[Section], length: int) -> list[Section]:
    """Sections in order, clipped to the text and to each other, empty ones left out."""
    ordered: list[Section] = []
    position = 0
    for section in sorted(sections, key=lambda section: section.start):
        start, end = max(section.start, position), min(section.end, length)
        if start < end:
            ordered.append(section.model_copy(update={"start": start, "end": end}))
            position = end
    return ordered


def _chunks(text: str, spans: list[Span], sections: list[Section]) -> list[Chunk]:
    section_ends = [section.end for section in sections]
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(spans):
        # The section the chunk starts in; for a start between sections, the next one.
        position = bisect.bisect_right(section_ends, start)
        section = sections[position] if position < len(sections) else None
        chunks.append(
            Chunk(
                index=index,
                text=text[start:end],
                start=start,
                end=end,
                page=section.page if section else None,
                heading_path=list(section.heading_path) if section else [],
            )
        )
    return chunks
