"""Batch ranges tile the input, keys depend on the range only, and lines wait for their end."""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

from vedette.forward.batching import NDJSON, TEXT, batch_key, cut_batches, line_pieces
from vedette.forward.tailer import read_lines


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    for line in data.splitlines(keepends=True):
        out.append((offset, line))
        offset += len(line)
    return out


def test_batches_tile_the_range_split_by_type_and_size_and_keys_repeat() -> None:
    data = b'{"a": 1}\n\n{"a": 2}\nnot json\n{"a": 3}\n' + b'{"b": 0}\n' * 7
    batches = list(cut_batches("gen1", line_pieces(_lines(data), True), max_records=3))
    assert [b.content_type for b in batches] == [NDJSON, TEXT, NDJSON, NDJSON, NDJSON]
    assert batches[0].start == 0 and batches[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(batches))
    assert sum(b.records for b in batches) == 11  # the blank line is covered, not sent
    assert gzip.decompress(batches[1].body) == b"not json\n"
    again = list(cut_batches("gen1", line_pieces(_lines(data), True), max_records=3))
    assert [b.key for b in again] == [b.key for b in batches]
    assert [b.body for b in again] == [b.body for b in batches]
    assert batch_key("gen2", 0, batches[0].end) != batches[0].key


def test_text_lines_are_repaired_for_the_centre() -> None:
    data = b"ok line\nbad \xff byte\x00\n"
    (batch,) = cut_batches("g", line_pieces(_lines(data), False))
    assert gzip.decompress(batch.body).decode() == "ok line\nbad \ufffd byte\ufffd\n"


def test_a_line_without_its_newline_waits_unless_the_file_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo\nthr")
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = read_lines(fd, 0, b"", 1 << 20, final=False)
        assert [line for _, line in chunk.lines] == [b"one\n", b"two\n"] and chunk.end == 8
        assert chunk.tail == b"one\ntwo\n"
        final = read_lines(fd, chunk.end, chunk.tail, 1 << 20, final=True)
        assert final.lines == [(8, b"thr")] and final.end == 11
        long = read_lines(fd, 0, b"", 5, final=False)  # a line longer than the limit is cut
        assert [line for _, line in long.lines] == [b"one\n"]
        cut = read_lines(fd, 4, b"", 3, final=False)
        assert cut.lines == [(4, b"two")]
    finally:
        os.close(fd)


def test_the_forwarder_is_a_client_it_never_imports_the_server_or_the_scan_face() -> None:
    import subprocess
    import sys

    code = (
        "import sys, vedette.forward, vedette.cli.cmd_forward; "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('vedette.')}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout
    assert "'forward'" in loaded and "'sources'" in loaded
    for face in ("'server'", "'scan'", "'store'", "'pipeline'", "'detect'"):
        assert face not in loaded, loaded
