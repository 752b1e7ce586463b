"""Syslog framing: RFC 6587 over TCP (octet counting and non-transparent), one message per datagram.

Samples (one TCP stream, both framings, detected per message)::

    62 <34>1 2003-10-11T22:14:15.003Z host su - ID47 - 'su root' failed
    <13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!\\n

Spec: https://www.rfc-editor.org/rfc/rfc6587 (section 3.4.1 octet counting, 3.4.2 non-transparent).

Rules, per frame:

- A frame that starts with a run of 1 to 10 digits followed by a space is octet-counted
  (``MSG-LEN SP MSG``); any other frame is non-transparent and ends at LF (a CR before it is
  removed) or at NUL. Empty frames (blank lines, stray CR/LF/NUL between frames) are skipped.
- An octet count with a leading zero, or of zero, is invalid: it is counted in ``bad_frames`` and
  the stream resynchronises after the next LF or NUL (that text is discarded).
- A message longer than ``max_message`` bytes is TRUNCATED to its first ``max_message`` bytes,
  delivered and counted in ``oversize``; the rest of that message is discarded (up to the end of
  the octet count, or up to the next trailer), so framing stays in step.
- At end of stream a non-transparent message without its trailer is delivered; an incomplete
  octet-counted frame is dropped and counted in ``bad_frames``.

Every delivered message is made one line by :func:`escape_line`.
"""

from __future__ import annotations

from typing import Protocol

MAX_COUNT_DIGITS = 10
_DIGITS = frozenset(b"0123456789")
_TRAILERS = b"\n\r\x00"

# Decoder states.
_START = 0  # at a frame boundary
_OCTET = 1  # reading an octet-counted body of self._need bytes
_LINE = 2  # reading a non-transparent frame up to a trailer
_SKIP = 3  # discarding the remaining self._skip bytes of an oversize octet-counted frame
_DISCARD = 4  # discarding up to the next trailer (oversize line or invalid octet count)


class FrameCounters(Protocol):
    """Where the decoder counts what it cuts or rejects (``ListenerStats`` is one)."""

    oversize: int
    bad_frames: int


def escape_line(message: bytes) -> bytes:
    r"""One line from one message: an embedded LF or CR becomes the two characters ``\n`` / ``\r``.

    Octet-counted frames may legally carry line breaks; the sink stores one message per line, so
    they are escaped (a literal backslash is left as it is: the escaping is for the record's
    shape, not reversible).
    """
    if b"\n" in message or b"\r" in message:
        return message.replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return message


def datagram_message(data: bytes, max_message: int, counters: FrameCounters) -> bytes | None:
    """The message of one UDP datagram (trailing LF, CRLF or NUL removed), or None when empty.

    Longer than ``max_message``: truncated and counted in ``oversize``.
    """
    message = data.rstrip(b"\n\r\x00")
    if not message:
        return None
    if len(message) > max_message:
        counters.oversize += 1
        message = message[:max_message]
    return escape_line(message)


def _trailer(buf: bytearray, start: int) -> int:
    """Index of the first LF or NUL at or after ``start``, or -1."""
    newline = buf.find(b"\n", start)
    nul = buf.find(b"\x00", start, newline if newline >= 0 else len(buf))
    return nul if nul >= 0 else newline


class FrameDecoder:
    """Incremental RFC 6587 decoder for one TCP connection: :meth:`feed` bytes, get messages."""

    __slots__ = ("_buf", "_counters", "_max", "_need", "_scanned", "_skip", "_state")

    def __init__(self, max_message: int, counters: FrameCounters) -> None:
        if max_message < 1:
            raise ValueError("max_message must be positive")
        self._max = max_message
        self._counters = counters
        self._buf = bytearray()
        self._state = _START
        self._need = 0
        self._skip = 0
        self._scanned = 0  # LINE/DISCARD: bytes already searched for a trailer

    def feed(self, data: bytes) -> list[bytes]:
        """Messages completed by ``data`` (each already one line, see :func:`escape_line`)."""
        self._buf += data
        out: list[bytes] = []
        pos = self._run(out)
        if pos:
            del self._buf[:pos]
            self._scanned = max(0, self._scanned - pos)
        return out

    def finish(self) -> list[bytes]:
        """End of stream: the last non-transparent message without a trailer, if any."""
        out: list[bytes] = []
        rest = bytes(self._buf).strip(_TRAILERS)
        if self._state in (_START, _LINE) and rest:
            self._emit(rest, out)
        elif self._state == _OCTET:
            self._counters.bad_frames += 1
        self._buf.clear()
        self._state, self._need, self._skip, self._scanned = _START, 0, 0, 0
        return out

    def _emit(self, message: bytes | bytearray, out: list[bytes]) -> None:
        if len(message) > self._max:
            self._counters.oversize += 1
            message = message[: self._max]
        out.append(escape_line(bytes(message)))

    def _run(self, out: list[bytes]) -> int:
        """Decode from the buffer's start; return how many bytes were consumed."""
        buf = self._buf
        end = len(buf)
        pos = 0
        while pos < end:
            state = self._state
            if state == _START:
                while pos < end and buf[pos] in _TRAILERS:
                    pos += 1
                if pos == end:
                    break
                if buf[pos] not in _DIGITS:
                    self._state, self._scanned = _LINE, pos
                    continue
                digits_end = pos
                while digits_end < end and buf[digits_end] in _DIGITS:
                    digits_end += 1
                length = digits_end - pos
                if length > MAX_COUNT_DIGITS:
                    self._state, self._scanned = _LINE, pos
                elif digits_end == end:
                    break  # a count or the start of a line: wait for the byte after the digits
                elif buf[digits_end] != 0x20:
                    self._state, self._scanned = _LINE, pos
                elif buf[pos] == 0x30:  # leading zero, or zero: not an RFC 6587 MSG-LEN
                    self._counters.bad_frames += 1
                    self._state, self._scanned = _DISCARD, digits_end
                else:
                    count = int(buf[pos:digits_end])
                    pos = digits_end + 1
                    self._need = min(count, self._max)
                    self._skip = count - self._need
                    if self._skip:
                        self._counters.oversize += 1
                    self._state = _OCTET
            elif state == _OCTET:
                if end - pos < self._need:
                    break
                out.append(escape_line(bytes(buf[pos : pos + self._need])))
                pos += self._need
                self._state = _SKIP if self._skip else _START
            elif state == _SKIP:
                taken = min(self._skip, end - pos)
                pos += taken
                self._skip -= taken
                if not self._skip:
                    self._state = _START
            else:  # _LINE or _DISCARD
                stop = _trailer(buf, max(pos, self._scanned))
                if stop < 0:
                    if state == _LINE and end - pos > self._max:
                        self._emit(buf[pos:end], out)
                        self._state = _DISCARD
                    if self._state == _DISCARD:
                        pos = end  # nothing of a discarded frame is kept
                    self._scanned = end
                    break
                if state == _LINE:
                    line_end = stop - 1 if stop > pos and buf[stop - 1] == 0x0D else stop
                    if line_end > pos:
                        self._emit(buf[pos:line_end], out)
                pos = stop + 1
                self._state = _START
        return pos
