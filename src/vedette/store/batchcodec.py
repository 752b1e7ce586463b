"""The spool's batch format, shared by every spool backend.

A batch is its records joined by ``b"\\n"`` (records are single lines), zlib-compressed at
level 1, with the CRC-32 of the uncompressed bytes and the record count beside it. The same
bytes are a row of :class:`vedette.store.spool.SqliteSpool` and the body of a JetStream
message (:mod:`vedette.store.jetstream`), so a batch reads back the same way from either.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EncodedBatch", "decode_batch", "encode_batch"]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch ready to store: the compressed blob, its CRC-32 (uncompressed) and count."""

    blob: bytes
    crc: int
    count: int


def encode_batch(records: Sequence[bytes]) -> EncodedBatch:
    """Encode records; raises ValueError for an empty batch or a record holding a newline."""
    if not records:
        raise ValueError("an append needs at least one record")
    for i, record in enumerate(records):
        if b"\n" in record:
            raise ValueError(f"record {i} contains a newline; records are single lines")
    data = b"\n".join(records)
    return EncodedBatch(blob=zlib.compress(data, 1), crc=zlib.crc32(data), count=len(records))


def decode_batch(blob: bytes, crc: int, count: int) -> list[bytes] | str:
    """The records of a stored batch, or the reason it cannot be read (a string)."""
    try:
        data = zlib.decompress(blob)
    except zlib.error as exc:
        return f"zlib: {exc}"
    if zlib.crc32(data) != crc:
        return "crc mismatch"
    records = data.split(b"\n")
    if len(records) != count:
        return f"count mismatch: {len(records)} records, {count} expected"
    return records
