"""A multipart/form-data body read as it arrives: part starts, data pieces, part ends.

python-multipart's push parser turns each network chunk into callbacks; they are queued
and handed out after each chunk, so a part's bytes are never held whole here (a caller
stores them piece by piece and stops the stream when a size limit is passed).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway_core.errors import InvalidRequestError


@dataclass(frozen=True)
class PartStart:
    """A part's headers: its form field `name`, and for a file its filename and type."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


PartEvent = PartStart | PartData | PartEnd


@dataclass
class _PartHeaders:
    """Collects one part's headers from the parser's callbacks."""

    events: list[PartEvent]
    field_name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field_name.extend(data[start:end])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value.extend(data[start:end])

    def on_header_end(self) -> None:
        self.headers[self.field_name.decode("latin-1").lower()] = bytes(self.value)
        self.field_name.clear()
        self.value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        content_type = self.headers.get("content-type")
        self.events.append(
            PartStart(
                name=name,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=content_type.decode("latin-1") if content_type else None,
            )
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(PartData(bytes(data[start:end])))

    def on_part_end(self) -> None:
        self.events.append(PartEnd())


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data content type (400 without one)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequestError("multipart/form-data without a boundary", param="file")
    return boundary


async def multipart_events(
    body: AsyncIterable[bytes], content_type: str
) -> AsyncIterator[PartEvent]:
    """The parts of a multipart body, as events in order, chunk by chunk."""
    events: list[PartEvent] = []
    collector = _PartHeaders(events)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary_of(content_type), callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
            for event in events:
                yield event
            events.clear()
        parser.finalize()
    except MultipartParseError as error:
        raise InvalidRequestError(f"malformed multipart body: {error}", param="file") from None
    for event in events:
        yield event
