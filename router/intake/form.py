"""Form bodies (multipart or url-encoded) parsed so that any malformed part is a 4xx naming that part.

Litestar's parser decides "file or field" by a non-empty ``filename`` and decodes every field with the
part's declared charset, so a file part with ``filename=""`` arrived as a string (or as a
UnicodeDecodeError), and a non-UTF-8 field or an unknown charset escaped as a 500. Here a part with a
``filename`` parameter, even an empty one, is a file; a field is text in its declared charset (UTF-8 by
default) or the request is refused, naming the field. Same streaming parser (``multipart``), same limits.
"""

from __future__ import annotations

import codecs
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.datastructures import FormMultiDict, UploadFile
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from router.errors import ApiError


def _text(data: bytes | bytearray, name: str, charset: str | None) -> str:
    charset = charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ApiError(
            400, "invalid_encoding", f"Form field {name!r} declares charset {charset!r}, which is unknown; send UTF-8.",
            name,
        ) from None  # fmt: skip
    try:
        return bytes(data).decode(charset)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", f"Form field {name!r} is not valid {charset}; send text as UTF-8.",
                       name) from None  # fmt: skip


_SPOOL = 256 * 1024
"""A file part is held in memory up to this size, then spooled to disk (Litestar's default is 1 MB): with a
thousand uploads arriving at once, what they hold while they arrive is what this number times a thousand is.
Its bytes are written in pieces of the same size: on disk every write is a trip to a worker thread, and the
network hands the body over in pieces of a few kilobytes."""


class _Parts:
    """Collects the parser's events into fields: text for plain parts, spooled files for file parts."""

    def __init__(self) -> None:
        self.fields: defaultdict[str, list[Any]] = defaultdict(list)
        self.segment: MultipartSegment | None = None
        self.data: UploadFile | bytearray = bytearray()
        self.pending = bytearray()
        """A file part's bytes not yet written to its spooled file."""

    async def _write(self, upload: UploadFile) -> None:
        if self.pending:
            await upload.write(self.pending)
            self.pending = bytearray()

    async def feed(self, events: Iterator[MultipartSegment | bytes | None]) -> None:
        for event in events:
            if isinstance(event, MultipartSegment):
                self.segment, self.data = event, bytearray()
                if event.filename is not None:  # a file part, even when its filename is empty
                    self.data = UploadFile(content_type=event.content_type or "application/octet-stream",
                                           filename=event.filename, headers=dict(event.headerlist),
                                           max_spool_size=_SPOOL)  # fmt: skip
            elif event:
                if isinstance(self.data, UploadFile):
                    self.pending += event
                    if len(self.pending) >= _SPOOL:
                        await self._write(self.data)
                else:
                    self.data.extend(event)
            elif self.segment is not None:
                name = self.segment.name or ""
                if isinstance(self.data, UploadFile):
                    await self._write(self.data)
                    await self.data.seek(0)
                    self.fields[name].append(self.data)
                else:
                    self.fields[name].append(_text(self.data, name, self.segment.charset))
                self.segment, self.data = None, bytearray()

    async def close(self) -> None:
        for value in [*(v for values in self.fields.values() for v in values), self.data]:
            if isinstance(value, UploadFile):
                await value.close()


async def _multipart(request: Request) -> dict[str, list[Any]]:
    boundary = request.content_type[1].get("boundary")
    if not boundary:
        raise ApiError(400, "invalid_form", "multipart/form-data needs a boundary in its Content-Type.")
    parts = _Parts()
    try:
        with PushMultipartParser(
            boundary.encode("latin-1"), max_segment_count=request.app.multipart_form_part_limit
        ) as parser:
            async for chunk in request.stream():
                if chunk:
                    await parts.feed(parser.parse(chunk))
            await parts.feed(parser.parse(b""))  # end of stream: the parser says whether the body was complete
    except ParserLimitReached as exc:
        await parts.close()
        raise ApiError(413, "form_too_large", f"The form exceeds a limit: {exc}.") from None
    except (ParserError, ValueError) as exc:
        await parts.close()
        raise ApiError(400, "invalid_form", f"The multipart body is malformed: {exc}.") from None
    except BaseException:
        await parts.close()
        raise
    return parts.fields


async def read_form(request: Request) -> FormMultiDict:
    """The request's form fields (str) and file parts (UploadFile), or an :class:`ApiError` saying what is wrong."""
    ctype = request.content_type[0]
    if ctype == "multipart/form-data":
        fields = await _multipart(request)
    elif ctype == "application/x-www-form-urlencoded":
        fields = defaultdict(list)
        body = _text(await request.body(), "body", None)
        try:
            pairs = parse_qsl(body, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_encoding", "A url-encoded field is not valid UTF-8.") from None
        for key, value in pairs:
            fields[key].append(value)
    else:
        fields = defaultdict(list)
    return FormMultiDict([(key, value) for key, values in fields.items() for value in values])
