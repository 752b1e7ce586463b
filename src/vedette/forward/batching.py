"""Batches: a contiguous range of one file turned into one request body, and its key.

A batch is cut from a position range (bytes of a text file, event indexes of an EVTX file)
and its ``Idempotency-Key`` is derived from that range and the file's generation id, so the
same range always carries the same key: a batch resent after a crash or a lost answer is
answered as a duplicate by the centre and stored once.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

TEXT = "text/plain"
NDJSON = "application/x-ndjson"

MAX_BATCH_RECORDS = 1000
MAX_BATCH_BYTES = 1 << 20
"""Well under the centre's limits (50,000 events, 32 MiB): a refused batch costs a resend."""


@dataclass(slots=True, frozen=True)
class Batch:
    """One request body covering ``[start, end)`` of the file generation ``file_uid``."""

    file_uid: str
    start: int
    end: int
    content_type: str
    body: bytes
    """gzip-compressed, as it goes on the wire and into the buffer."""
    records: int

    @property
    def key(self) -> str:
        """The ``Idempotency-Key``: a function of the position range only."""
        return batch_key(self.file_uid, self.start, self.end)


def batch_key(file_uid: str, start: int, end: int) -> str:
    """sha256 of the file generation and the range, hex (64 characters)."""
    return hashlib.sha256(f"vedette-forward:{file_uid}:{start}:{end}".encode()).hexdigest()


def text_record(line: bytes) -> bytes | None:
    """A log line as the centre's ``text/plain`` accepts it (UTF-8, no NUL); None when blank."""
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    # The centre refuses a whole batch for one non-UTF-8 or NUL line: repair it here instead.
    text = line.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return text.encode("utf-8")


def json_record(line: bytes) -> bytes | None:
    """A JSON-lines record as one NDJSON line; None when it is not a JSON object."""
    stripped = line.strip()
    if not stripped.startswith(b"{"):
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    return stripped if isinstance(value, dict) else None


@dataclass(slots=True, frozen=True)
class Piece:
    """One input unit: its range, content type and record (None: blank, covered but not sent)."""

    start: int
    end: int
    content_type: str
    record: bytes | None


def line_pieces(lines: Iterable[tuple[int, bytes]], json_lines: bool) -> Iterator[Piece]:
    """Pieces of ``(offset, line)`` pairs; in a JSON-lines file a non-JSON line goes as text."""
    for offset, line in lines:
        end = offset + len(line)
        record = json_record(line) if json_lines else None
        if record is not None:
            yield Piece(offset, end, NDJSON, record)
        else:
            yield Piece(offset, end, TEXT, text_record(line))


def event_pieces(records: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[Piece]:
    """Pieces of ``(index, JSON record)`` pairs (EVTX events): one index each."""
    for index, record in records:
        yield Piece(index, index + 1, NDJSON, orjson.dumps(record))


def cut_batches(
    file_uid: str,
    pieces: Iterable[Piece],
    *,
    max_records: int = MAX_BATCH_RECORDS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[Batch]:
    """Contiguous pieces grouped into batches of one content type within the size limits.

    Blank pieces join whichever batch surrounds them, so batch ranges tile the input with no
    gap and the file position can move to the last batch's end.
    """
    start: int | None = None
    end = 0
    kind: str | None = None
    records: list[bytes] = []
    size = 0
    for piece in pieces:
        if (
            piece.record is not None
            and records
            and (piece.content_type != kind or len(records) >= max_records or size >= max_bytes)
        ):
            yield _batch(file_uid, start or 0, end, kind or TEXT, records)
            start, records, size = None, [], 0
        if start is None:
            start = piece.start
        end = piece.end
        if piece.record is not None:
            kind = piece.content_type
            records.append(piece.record)
            size += len(piece.record) + 1
    if start is not None:
        yield _batch(file_uid, start, end, kind or TEXT, records)


def _batch(file_uid: str, start: int, end: int, kind: str, records: list[bytes]) -> Batch:
    body = b"\n".join(records) + b"\n" if records else b""
    # mtime=0: the same range compresses to the same bytes, whenever it is cut
    return Batch(file_uid, start, end, kind, gzip.compress(body, 6, mtime=0), len(records))
