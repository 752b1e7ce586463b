"""A file posted from a console form (``multipart/form-data``), read with the standard
library's MIME parser: one small form, so no multipart package is needed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from vedette.store.state.scope import Invalid

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
FEED_SUFFIXES = (".json", ".csv", ".txt", ".gz")
"""What a feed folder loads (vedette.intel.feeds.expand_feed_paths)."""
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(slots=True)
class Upload:
    """The form's text fields and its one file."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    data: bytes = b""


def parse_upload(content_type: str, body: bytes) -> Upload:
    """The fields and the file of a ``multipart/form-data`` body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise Invalid("expected a multipart/form-data form")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise Invalid("malformed form")
    upload = Upload()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            upload.filename, upload.data = str(filename), data
        elif isinstance(name, str):
            upload.fields[name] = data.decode("utf-8", errors="replace")
    return upload


def feed_name(filename: str) -> str | None:
    """A safe file name for an imported feed (its base name, odd characters replaced), or None
    when the name has no feed suffix. Never a path: the folder is the centre's own."""
    base = _NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not base or not base.lower().endswith(FEED_SUFFIXES):
        return None
    return base[:120]
