"""Streaming multipart uploads: bytes go to the store as they arrive, capped, never held whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import ParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service.errors import InvalidRequest, PayloadTooLarge
from service.storage import StoredObject, StoreWriter

HEAD_BYTES = 512
MAX_FIELD_BYTES = 4096
# Text fields are few and small: a body of thousands of them is an attack on memory, not a form.
MAX_PARTS = 16
# RFC 2046 caps a boundary at 70 characters; python-multipart refuses past 256 with a ValueError.
MAX_BOUNDARY_CHARS = 70
# Room for the multipart envelope and small text fields on top of the file itself.
ENVELOPE_SLACK = 64 * 1024


class WriterFactory(Protocol):
    """Where an upload's bytes go: the artifact store, or a sink that only hashes them."""

    def writer(self) -> StoreWriter:
        """Start writing a new object."""


@dataclass
class ReceivedUpload:
    """A file stored from a multipart body, plus the body's small text fields."""

    stored: StoredObject
    filename: str
    head: bytes
    fields: dict[str, str] = field(default_factory=dict)


class _Receiver:
    """Multipart callbacks routing the file part to a store writer and text parts to a dict."""

    def __init__(
        self,
        store: WriterFactory,
        file_field: str,
        max_bytes: int,
        check_head: Callable[[bytes], None] | None = None,
    ) -> None:
        self.store, self.file_field, self.max_bytes = store, file_field, max_bytes
        self.check_head = check_head
        self.head_checked = False
        self.writer: StoreWriter | None = None
        self.filename = ""
        self.head = b""
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name: str | None = None
        self._field_value = bytearray()
        self._parts = 0

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(f"the multipart body has more than {MAX_PARTS} parts")
        self._headers, self._part_name = {}, None
        self._field_value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part_name == self.file_field:
            if self.writer is not None:
                raise InvalidRequest(f"send exactly one '{self.file_field}' part")
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")[:255]
            self.writer = self.store.writer()
        elif self._part_name in self.fields:
            # Each field is one string: a repeated one (a list) would otherwise keep its last value.
            raise InvalidRequest(f"form field '{self._part_name}' appears more than once")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part_name == self.file_field and self.writer is not None:
            if len(self.head) < HEAD_BYTES:
                self.head += chunk[: HEAD_BYTES - len(self.head)]
                if len(self.head) == HEAD_BYTES:
                    self.run_head_check()
            self.writer.write(chunk)
            if self.writer.size_bytes > self.max_bytes:
                raise PayloadTooLarge(
                    f"the file is larger than the limit of {self.max_bytes} bytes", limit=self.max_bytes
                )
        else:
            self._field_value += chunk
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"form field '{self._part_name}' is too long")

    def run_head_check(self) -> None:
        """Refuse a plainly wrong file as soon as its first bytes are in, before reading the rest."""
        if self.check_head is not None and not self.head_checked:
            self.head_checked = True
            self.check_head(self.head)

    def on_part_end(self) -> None:
        if self._part_name == self.file_field:
            self.run_head_check()
        if self._part_name and self._part_name != self.file_field:
            self.fields[self._part_name] = self._field_value.decode("utf-8", "replace")


async def receive_upload(
    request: Request,
    *,
    store: WriterFactory,
    max_bytes: int,
    file_field: str = "file",
    check_head: Callable[[bytes], None] | None = None,
    check_fields: Callable[[dict[str, str]], object] | None = None,
    check_file: Callable[[BinaryIO], object] | None = None,
) -> ReceivedUpload:
    """Stream a multipart/form-data body's file part into the store; 413 past max_bytes.

    `check_head` sees the file's first bytes as soon as they arrive and may raise a Problem, which
    ends the request without reading (or storing) the rest. `check_fields` (the text fields) and
    `check_file` (the complete file, read back seekable from the store's staging area) run before
    the bytes are committed, so a refused upload leaves nothing in the store.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise InvalidRequest(f"send multipart/form-data with the file in a '{file_field}' field")
    if len(options[b"boundary"]) > MAX_BOUNDARY_CHARS:
        raise InvalidRequest(f"the multipart boundary is longer than {MAX_BOUNDARY_CHARS} characters")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + ENVELOPE_SLACK:
        # Refuse before reading a byte of a body that is declared too large.
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes", limit=max_bytes)
    receiver = _Receiver(store, file_field, max_bytes, check_head)
    try:
        parser = MultipartParser(options[b"boundary"], callbacks=_callbacks(receiver))  # type: ignore[arg-type]
    except ValueError:
        raise InvalidRequest("the multipart boundary is not valid") from None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + ENVELOPE_SLACK:
                # Whatever the parts hold (a huge preamble or epilogue too), the body has a ceiling.
                raise PayloadTooLarge(
                    f"the upload is larger than the limit of {max_bytes} bytes", limit=max_bytes
                )
            parser.write(chunk)
        parser.finalize()
    except BaseException as error:
        if receiver.writer is not None:
            receiver.writer.abort()
        if isinstance(error, ParseError):
            raise InvalidRequest(f"the multipart body is malformed: {error}") from None
        if isinstance(error, ClientDisconnect):
            raise InvalidRequest("the client went away before the upload was complete") from None
        raise
    if receiver.writer is None:
        raise InvalidRequest(f"the multipart body has no '{file_field}' part")
    if receiver.writer.size_bytes == 0:
        receiver.writer.abort()
        raise InvalidRequest("the uploaded file is empty")
    try:
        if check_fields is not None:
            check_fields(receiver.fields)
        staged = getattr(receiver.writer, "staged", None)  # a replay's hash-only writer keeps nothing
        if check_file is not None and staged is not None:
            # A file check may read the whole file (a dataset's values): off the event loop.
            await run_in_threadpool(_check_staged, staged, check_file)
    except BaseException:
        receiver.writer.abort()
        raise
    return ReceivedUpload(receiver.writer.commit(), receiver.filename, receiver.head, receiver.fields)


def _check_staged(staged: Callable[[], BinaryIO], check_file: Callable[[BinaryIO], object]) -> None:
    with staged() as handle:
        check_file(handle)


def _callbacks(receiver: _Receiver) -> dict[str, object]:
    names = (
        "on_part_begin",
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
        "on_part_data",
        "on_part_end",
    )
    return {name: getattr(receiver, name) for name in names}
