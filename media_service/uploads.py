"""Multipart uploads read as a stream, to a size limit.

Starlette's form parser spools a whole upload before the route runs. Here the body is parsed as
it arrives (python-multipart's push parser) and reading stops the moment the file part passes the
limit, so a client learns 413 after at most `limit` bytes, and a declared Content-Length over the
limit is refused before one byte of the body is read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from media_service import errors

# Room for the multipart framing and the small text fields around the file.
FRAMING_BYTES = 16 * 1024
MAX_TEXT_FIELD_BYTES = 1024


@dataclass
class Upload:
    file: io.BytesIO = field(default_factory=io.BytesIO)
    filename: str | None = None
    has_file: bool = False
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(request: Request, *, limit: int, file_field: str = "file") -> Upload:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise errors.VALIDATION_ERROR("Send the file as multipart/form-data with a `file` part.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + FRAMING_BYTES:
        raise errors.TOO_LARGE(limit_bytes=limit)

    upload = Upload()
    part: dict = {}
    headers: dict[bytes, bytes] = {}
    header_name = bytearray()
    header_value = bytearray()
    text = bytearray()

    def on_part_begin():
        headers.clear()
        part.clear()
        text.clear()

    def on_header_field(data, start, end):
        header_name.extend(data[start:end])

    def on_header_value(data, start, end):
        header_value.extend(data[start:end])

    def on_header_end():
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished():
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        part["name"] = name
        part["is_file"] = name == file_field
        if part["is_file"]:
            if upload.has_file:
                raise errors.VALIDATION_ERROR("Send one file per upload.")
            upload.has_file = True
            filename = options.get(b"filename")
            upload.filename = filename.decode("utf-8", "replace")[:255] if filename else None

    def on_part_data(data, start, end):
        if part.get("is_file"):
            upload.file.write(memoryview(data)[start:end])
            if upload.file.tell() > limit:
                raise errors.TOO_LARGE(limit_bytes=limit)
        else:
            text.extend(data[start:end])
            if len(text) > MAX_TEXT_FIELD_BYTES:
                raise errors.VALIDATION_ERROR(f"The field {part.get('name')!r} is too long.")

    def on_part_end():
        if not part.get("is_file") and part.get("name"):
            upload.fields[part["name"]] = text.decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except errors.APIError:
        raise
    except Exception as exc:  # python-multipart's FormParserError / MultipartParseError
        raise errors.VALIDATION_ERROR(f"The multipart body is malformed: {exc}") from None
    if not upload.has_file:
        raise errors.VALIDATION_ERROR("The `file` part is missing.")
    upload.file.seek(0)
    return upload


def multipart_upload_body(*, file_types: tuple[str, ...] = (), **fields: dict) -> dict:
    """`openapi_extra` for a route that reads its multipart body itself (read_upload): a required
    binary `file` and the given form fields, so the document says what the route takes; `file_types`,
    the media types the file may be (recognised by content), as the file part's encoding."""
    schema = {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}
    schema["properties"].update(fields)
    media: dict = {"schema": schema}
    if file_types:
        media["encoding"] = {"file": {"contentType": ", ".join(file_types)}}
    return {"requestBody": {"content": {"multipart/form-data": media}, "required": True}}
