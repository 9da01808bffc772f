"""Parsing a multipart form whose fields may exceed Django's DATA_UPLOAD_MAX_MEMORY_SIZE.

Only installed by jails.middleware.LargeListBodyMiddleware, for a request it has already
allowed and read (at most JAILADMIN_LARGE_LIST_MAX_BYTES, held in memory anyway). Django's
MultiPartParser reads the limit from the global settings; an upload handler's
handle_raw_input is Django's documented way to take over the parsing of one request.
"""

from __future__ import annotations

import html
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils.datastructures import MultiValueDict


class MultipartFormHandler(FileUploadHandler):
    """Parses the whole (already size-checked) multipart body with the standard library."""

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, Any],  # noqa: N803 (Django's parameter name)
        content_length: int,
        # bytes, as Django passes it (MultiPartParser encodes it); the stub says str.
        boundary: bytes,  # type: ignore[override]
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict]:
        body = input_data.read(content_length)
        return multipart_parse(body, content_type=META["CONTENT_TYPE"], encoding=encoding)


def multipart_parse(
    body: bytes, *, content_type: str, encoding: str | None = None
) -> tuple[QueryDict, MultiValueDict]:
    """(POST, FILES) of a multipart/form-data body, as Django's own parser gives them."""
    encoding = encoding or settings.DEFAULT_CHARSET
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise MultiPartParserError("Invalid multipart body")
    post = QueryDict(mutable=True, encoding=encoding)
    files: MultiValueDict = MultiValueDict()
    parts = list(message.iter_parts())
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if limit is not None and len(parts) > limit:
        raise TooManyFieldsSent("The number of fields exceeded DATA_UPLOAD_MAX_NUMBER_FIELDS.")
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name.strip():
            continue  # Django skips a part without a name too
        name = name.strip()
        # With decode=True a leaf part gives bytes, a nested multipart None (typeshed's
        # union also allows a Message): anything but bytes is an empty value.
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_param("filename", header="content-disposition")
        if not filename:  # as in Django: an empty filename makes a plain field
            post.appendlist(name, data.decode(encoding, errors="replace"))
            continue
        safe_name = _file_name_sanitize(str(filename))
        if safe_name is not None:
            content_type = part.get_content_type() if part.get("Content-Type") else ""
            files.appendlist(name, SimpleUploadedFile(safe_name, data, content_type))
    post._mutable = False  # as Django's parser leaves request.POST
    return post, files


def _file_name_sanitize(name: str) -> str | None:
    """Django's MultiPartParser.sanitize_file_name: no directories, nothing unprintable."""
    name = html.unescape(name).rsplit("/")[-1].rsplit("\\")[-1]
    name = "".join(char for char in name if char.isprintable())
    return None if name in {"", ".", ".."} else name
