"""RFC 6587 decoding without sockets: both framings, chunking, oversize, resync."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syslog_testkit import octet

from vedette.server.syslog_framing import FrameDecoder, datagram_message, escape_line
from vedette.server.syslog_listen import ListenerStats

pytestmark = pytest.mark.embedded_only("no centre: syslog framing in process")

RFC5424 = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed"
RFC3164 = b"<13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!"


def decode(chunks: list[bytes], max_message: int = 65536) -> tuple[list[bytes], ListenerStats]:
    stats = ListenerStats()
    decoder = FrameDecoder(max_message, stats)
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    out += decoder.finish()
    return out, stats


def test_newline_trailers_lf_crlf_nul() -> None:
    out, stats = decode([RFC3164 + b"\n" + RFC5424 + b"\r\n" + b"third\x00fourth\n"])
    assert out == [RFC3164, RFC5424, b"third", b"fourth"]
    assert (stats.oversize, stats.bad_frames) == (0, 0)


def test_octet_counted_frames_in_one_chunk_and_split_bytewise() -> None:
    stream = octet(RFC5424) + octet(RFC3164) + octet(b"x")
    assert decode([stream])[0] == [RFC5424, RFC3164, b"x"]
    assert decode([stream[i : i + 1] for i in range(len(stream))])[0] == [RFC5424, RFC3164, b"x"]


def test_framing_detected_per_message() -> None:
    stream = octet(RFC5424) + RFC3164 + b"\n" + octet(b"<14>hi") + b"2024-01-02T03:04:05Z h p: m\n"
    out, stats = decode([stream])
    assert out == [RFC5424, RFC3164, b"<14>hi", b"2024-01-02T03:04:05Z h p: m"]
    assert stats.bad_frames == 0


def test_octet_counted_line_breaks_are_escaped() -> None:
    out, _ = decode([octet(b"<13>multi\nline\r\nmessage")])
    assert out == [b"<13>multi\\nline\\r\\nmessage"]
    assert escape_line(b"plain") == b"plain"


def test_long_digit_run_is_a_line_not_a_count() -> None:
    out, stats = decode([b"12345678901 not a count\n"])
    assert out == [b"12345678901 not a count"]
    assert stats.bad_frames == 0


def test_invalid_count_resyncs_at_next_newline() -> None:
    out, stats = decode([b"012 garbage here\n", octet(b"<13>after"), b"0 also bad\x00<13>line\n"])
    assert out == [b"<13>after", b"<13>line"]
    assert stats.bad_frames == 2


def test_oversize_octet_frame_truncated_and_stream_stays_in_step() -> None:
    big = b"<13>" + b"a" * 296
    out, stats = decode([octet(big)[:50], octet(big)[50:] + octet(b"<13>next")], max_message=100)
    assert out == [big[:100], b"<13>next"]
    assert stats.oversize == 1


def test_oversize_line_truncated_rest_discarded() -> None:
    big = b"<13>" + b"b" * 296
    out, stats = decode([big[:150], big[150:] + b"\n<13>next\n"], max_message=100)
    assert out == [big[:100], b"<13>next"]
    assert stats.oversize == 1
    out, stats = decode([big + b"\n<13>next\n"], max_message=100)  # trailer in the same chunk
    assert out == [big[:100], b"<13>next"]
    assert stats.oversize == 1


def test_end_of_stream() -> None:
    out, stats = decode([b"<13>complete\n<13>no trailer"])
    assert out == [b"<13>complete", b"<13>no trailer"]
    out, stats = decode([b"50 <13>cut short"])
    assert out == []
    assert stats.bad_frames == 1
    out, stats = decode([b"\n\r\n\x00"])  # blank frames are not messages
    assert out == []
    assert (stats.bad_frames, stats.oversize) == (0, 0)


def test_datagram_message() -> None:
    stats = ListenerStats()
    assert datagram_message(RFC3164 + b"\r\n", 100, stats) == RFC3164
    assert datagram_message(b"<13>a\nb\x00", 100, stats) == b"<13>a\\nb"
    assert datagram_message(b"\n", 100, stats) is None
    assert datagram_message(b"x" * 150, 100, stats) == b"x" * 100
    assert stats.oversize == 1


# A message body for either framing: no trailer bytes, and not starting with a digit (so that a
# newline-framed message is not read as a count, which RFC 6587 cannot tell apart).
_body = st.binary(min_size=1, max_size=80).filter(
    lambda b: not any(c in b for c in b"\n\r\x00") and not b[:1].isdigit()
)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.tuples(_body, st.sampled_from(["octet", "lf", "crlf", "nul"])), max_size=8
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_chunking_gives_the_same_messages(
    messages: list[tuple[bytes, str]], cuts: list[int]
) -> None:
    trailer = {"lf": b"\n", "crlf": b"\r\n", "nul": b"\x00"}
    stream = b"".join(
        octet(body) if kind == "octet" else body + trailer[kind] for body, kind in messages
    )
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in pairwise(points)]
    out, stats = decode(chunks)
    assert out == [body for body, _ in messages]
    assert (stats.bad_frames, stats.oversize) == (0, 0)
