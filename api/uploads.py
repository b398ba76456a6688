"""Receives a multipart upload: the file streamed to the data dir's temp area and capped as it
arrives, form fields counted and capped; the temp file is always removed afterwards.

A process that dies mid-upload cannot remove its file: the API removes such files as it
starts. Each upload holds a lock on its file for as long as it is received and read, which the
system releases when its process dies, so that an API process starting beside others (`capas
api --workers N`) removes only the files no live process is using.
"""

import fcntl
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from core.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from core.settings import Settings

MB = 1024 * 1024
FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096
# What the multipart envelope may add to the file: boundaries, part headers, small fields.
ENVELOPE_BYTES = 64 * 1024
SPOOL_SUFFIX = ".upload"


def upload_body_limit(settings: Settings) -> int:
    """The request body cap of the upload route (the file's own cap is checked as it streams)."""
    return settings.max_upload_mb * MB + ENVELOPE_BYTES


@dataclass
class ReceivedUpload:
    path: Path  # made here from a random id
    filename: str | None = None  # the client's name: shown to users, never used as a path
    content_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0


class _Receiver:
    """python-multipart callbacks: the file part goes to disk, other parts to `fields`."""

    def __init__(self, upload: ReceivedUpload, settings: Settings):
        self.upload = upload
        self.max_file_bytes = settings.max_upload_mb * MB
        self.max_upload_mb = settings.max_upload_mb
        self.max_files = settings.max_multipart_files
        self.max_fields = settings.max_multipart_fields
        self.files = self.field_count = 0
        self.file: BinaryIO | None = None
        self.file_received = False
        self.headers: dict[bytes, bytes] = {}
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.part_name = ""
        self.value = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end}

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name, self.header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition"))
        self.part_name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            self.field_count += 1
            if self.field_count > self.max_fields:
                raise Invalid(f"more than {self.max_fields} form fields",
                              [{"field": self.part_name, "value": self.field_count}])
            if self.part_name in self.upload.fields:
                raise Invalid(f"form field '{self.part_name}' is sent twice",
                              [{"field": self.part_name, "value": None}])
            self.value = bytearray()
            return
        self.files += 1
        if self.files > self.max_files:
            raise Invalid(f"more than {self.max_files} file(s) in one upload",
                          [{"field": self.part_name, "value": self.files}])
        if self.part_name != FILE_FIELD:
            raise Invalid(f"the file must be sent as the '{FILE_FIELD}' field, not "
                          f"'{self.part_name}'", [{"field": self.part_name, "value": None}])
        content_type, _ = parse_options_header(self.headers.get(b"content-type"))
        self.upload.filename = filename.decode("utf-8", "replace")
        self.upload.content_type = content_type.decode("latin-1") or None
        self.file = self.upload.path.open("r+b")  # made and locked by `spool_file`

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is None:
            self.value += data[start:end]
            if len(self.value) > MAX_FIELD_BYTES:
                raise Invalid(f"form field '{self.part_name}' exceeds {MAX_FIELD_BYTES} bytes",
                              [{"field": self.part_name, "value": None}])
            return
        self.upload.size += end - start
        if self.upload.size > self.max_file_bytes:
            raise PayloadTooLarge(f"the file exceeds the upload limit of {self.max_upload_mb} MB",
                           [{"field": FILE_FIELD, "value": self.upload.filename,
                             "limit_mb": self.max_upload_mb}])
        self.file.write(data[start:end])

    def on_part_end(self) -> None:
        if self.file is not None:
            self.close()
            self.file_received = True
            return
        try:
            self.upload.fields[self.part_name] = self.value.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(f"form field '{self.part_name}' is not UTF-8 text",
                          [{"field": self.part_name, "value": None}]) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


@contextmanager
def spool_file(directory: Path) -> Iterator[Path]:
    """A new empty file in `directory`, locked while in use, then deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        path = directory / f"{uuid.uuid4().hex}{SPOOL_SUFFIX}"
        lock = path.open("xb")
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits out a starting process that found it unlocked
        if os.fstat(lock.fileno()).st_nlink:
            break
        lock.close()  # that process removed it before the lock was taken: another name
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        lock.close()


def remove_abandoned_uploads(settings: Settings) -> int:
    """Delete the temp files of uploads whose process died; returns how many."""
    removed = 0
    for path in settings.upload_temp_dir.glob(f"*{SPOOL_SUFFIX}"):
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue  # its upload just finished
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process is receiving or reading it
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@asynccontextmanager
async def receive_upload(request: Request, settings: Settings) -> AsyncIterator[ReceivedUpload]:
    """Stream the request's multipart body; yields the received file, then deletes it."""
    header = request.headers.get("content-type")
    content_type, params = parse_options_header(header)
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise UnsupportedMediaType(f"send the dataset as multipart/form-data with a "
                                   f"'{FILE_FIELD}' field",
                                   [{"field": "Content-Type", "value": header}])
    with spool_file(settings.upload_temp_dir) as path:
        upload = ReceivedUpload(path=path)
        receiver = _Receiver(upload, settings)
        try:
            parser = MultipartParser(params[b"boundary"], receiver.callbacks())
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
            if not receiver.file_received:
                raise Invalid(f"the upload needs a '{FILE_FIELD}' field holding the dataset "
                              "file", [{"field": FILE_FIELD, "value": None}])
            yield upload
        except FormParserError as error:
            raise Invalid(f"malformed multipart body: {error}",
                          [{"field": "body", "value": None}]) from None
        finally:
            receiver.close()
