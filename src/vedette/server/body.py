"""The body of an ingest request: NDJSON, a JSON array or syslog text, gzip or not, validated whole.

A batch is accepted or rejected as one: the first bad record rejects it with the line (or array
index) that is wrong, and nothing of it is stored, so a client that fixes and resends never
leaves half a batch behind. What is accepted becomes single-line records for the spool: each
NDJSON line as it was sent (it is one line by definition), each array element re-serialised,
each syslog line as text.

Content types: ``application/x-ndjson``, ``application/jsonl``, ``application/json`` (an array
or NDJSON, told apart by the first character) and ``text/plain`` (syslog lines, one per line).
``Content-Encoding: gzip`` is accepted, bounded by the same size limit after decompression.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson

from vedette.errors import VedetteError

JSON_TYPES = frozenset(
    {"application/json", "application/x-ndjson", "application/jsonl", "application/ndjson"}
)
TEXT_TYPES = frozenset({"text/plain"})
MAX_DEPTH_NOTE = "nested too deeply"


class BodyError(VedetteError):
    """A request body that cannot be accepted; ``status`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str, *, line: int | None = None) -> None:
        self.status = status
        self.line = line
        super().__init__(message)


@dataclass(slots=True, frozen=True)
class IngestBody:
    """What a request carries, ready for the spool: ``kind`` is ``json`` or ``syslog``."""

    kind: str
    records: list[bytes]


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json`` (empty when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_bytes: int,
    max_records: int,
) -> IngestBody:
    """Validate and split one request body; raises :class:`BodyError` naming the problem."""
    mtype = media_type(content_type)
    if mtype not in JSON_TYPES and mtype not in TEXT_TYPES:
        raise BodyError(
            415,
            f"unsupported content type {mtype or '(none)'!r}: send application/x-ndjson, "
            "application/json or text/plain (syslog lines)",
        )
    data = _decompress(body, content_encoding, max_bytes)
    if len(data) > max_bytes:
        raise BodyError(413, f"body of {len(data):,} bytes is over the {max_bytes:,}-byte limit")
    if mtype in TEXT_TYPES:
        records = _text_lines(data)
        kind = "syslog"
    elif data.lstrip()[:1] == b"[":
        records = _json_array(data)
        kind = "json"
    else:
        records = _ndjson(data)
        kind = "json"
    if not records:
        raise BodyError(400, "the body holds no event")
    if len(records) > max_records:
        raise BodyError(
            413, f"{len(records):,} events in one request; at most {max_records:,} are accepted"
        )
    return IngestBody(kind=kind, records=records)


def _decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "x-gzip"):
        raise BodyError(415, f"unsupported content encoding {name!r}: send gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # One byte past the limit is enough to know it is too big: never inflate a bomb whole.
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BodyError(400, f"the gzip body is corrupt: {exc}") from None
    if len(data) > max_bytes:
        raise BodyError(413, f"the body inflates past the {max_bytes:,}-byte limit")
    if not inflater.eof:
        raise BodyError(400, "the gzip body is truncated")
    return data


def _json_error(exc: orjson.JSONDecodeError) -> str:
    # orjson's message names the column and character; keep it short and single-line.
    return str(exc).splitlines()[0]


def _ndjson(data: bytes) -> list[bytes]:
    records: list[bytes] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            message = f"line {number}: invalid JSON: {_json_error(exc)}"
            raise BodyError(400, message, line=number) from None
        except RecursionError:
            raise BodyError(400, f"line {number}: JSON {MAX_DEPTH_NOTE}", line=number) from None
        if not isinstance(value, dict):
            raise BodyError(
                400,
                f"line {number}: an event must be a JSON object, not {type(value).__name__}",
                line=number,
            )
        records.append(line)
    return records


def _json_array(data: bytes) -> list[bytes]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        where = f"line {line}: " if line is not None else ""
        raise BodyError(400, f"{where}invalid JSON: {_json_error(exc)}", line=line) from None
    except RecursionError:
        raise BodyError(400, f"JSON {MAX_DEPTH_NOTE}") from None
    if not isinstance(value, list):
        raise BodyError(400, "a JSON body must be an array of events or NDJSON")
    records = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BodyError(
                400,
                f"element {index}: an event must be a JSON object, not {type(item).__name__}",
            )
        records.append(orjson.dumps(item))
    return records


def _text_lines(data: bytes) -> list[bytes]:
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if b"\x00" in line:
            raise BodyError(400, f"line {number}: a NUL byte in a text line", line=number)
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError(400, f"line {number}: not UTF-8 text", line=number) from None
        records.append(line)
    return records
