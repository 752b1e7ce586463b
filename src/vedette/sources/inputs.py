"""Input streams: plain files, .gz, .bz2, .zip members (``archive.zip!member``), UTF-16 text.

Compression is recognised by magic bytes, not by file name, so a renamed ``.log`` that is really
gzip still reads. Decompression is bounded (:data:`MAX_RATIO` past :data:`RATIO_FLOOR`, and
:data:`MAX_DECOMPRESSED` in all): a bomb raises :class:`DecompressionLimit` instead of filling
memory or disk. An archive's directory is read once per process and shared by its members (one
open per member made a zip of many small files quadratic).

Text in UTF-16 (with a byte-order mark, as Windows tools write it) is transcoded
to UTF-8 here, once, so that every reader only ever sees UTF-8 (or Latin-1) bytes.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import os
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple, cast

MEMBER_SEPARATOR = "!"
"""Separates an archive from its member in a source path: ``logs.zip!dir/file.json``."""

HEAD_BYTES = 32 * 1024
"""How much of a stream sniffing looks at."""
_SKIPPED_DIRS = frozenset((".git", ".svn", ".hg", "__MACOSX"))

MAX_RATIO = 200
"""Decompressed bytes per compressed byte past :data:`RATIO_FLOOR`: text logs compress 5-50
times, deflate's own maximum is about 1,030 (what a bomb uses)."""
RATIO_FLOOR = 256 * 1024 * 1024
"""Any stream may decompress to this much, whatever its ratio (small, very repetitive logs)."""
MAX_DECOMPRESSED = 64 * 1024 * 1024 * 1024
"""No compressed stream is read past this many decompressed bytes."""
_KEPT_ARCHIVES = 4
_BOUNDED_READ = 8192

_GZIP_MAGIC = b"\x1f\x8b\x08"  # with the deflate method byte
_BZIP2_MAGIC = b"BZh"  # followed by the block size, "1".."9"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class DecompressionLimit(OSError):
    """A compressed stream decompresses past :data:`MAX_RATIO` or :data:`MAX_DECOMPRESSED`."""


class _Archives:
    """Open zip archives of this process, the last few used, keyed by file identity.

    Members are opened from the shared archive (``ZipFile`` serialises their reads on one file
    handle); a process started by fork drops what its parent had open instead of sharing the
    parent's file position.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: OrderedDict[tuple[str, int, int, int, int], zipfile.ZipFile] = OrderedDict()

    def get(self, path: str) -> zipfile.ZipFile:
        info = os.stat(path)
        key = (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._close_all()
            archive = self._open.get(key)
            if archive is not None:
                self._open.move_to_end(key)
                return archive
            archive = zipfile.ZipFile(path)
            self._open[key] = archive
            while len(self._open) > _KEPT_ARCHIVES:
                self._open.popitem(last=False)[1].close()  # open members keep the file
            return archive

    def _close_all(self) -> None:
        for archive in self._open.values():
            archive.close()
        self._open.clear()


_ARCHIVES = _Archives()


@dataclass(slots=True, frozen=True)
class Source:
    """One readable stream: a file, or a member of a zip archive, possibly compressed.

    ``start``/``end`` select a byte range of a plain (uncompressed) file for a split read.
    """

    path: str
    """The file on disk."""
    member: str | None = None
    """Member name inside the zip archive at ``path``."""
    start: int = 0
    end: int | None = None
    plain_size: int | None = field(default=None, compare=False)
    """Size in bytes when :func:`probe_file` already found this to be an uncompressed file on
    disk (saves the reader another open and stat); None when nobody looked."""

    @property
    def display(self) -> str:
        """The path shown to users and kept in SourceRef: ``file`` or ``archive.zip!member``."""
        return self.path if self.member is None else f"{self.path}{MEMBER_SEPARATOR}{self.member}"

    @property
    def name(self) -> str:
        """Base name without compression suffix (``dns.log.gz`` -> ``dns.log``): a layout hint."""
        base = os.path.basename(self.member if self.member is not None else self.path)
        for suffix in (".gz", ".bz2"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
        return base

    @property
    def is_whole(self) -> bool:
        """True when the source is read from its first byte to its last."""
        return self.start == 0 and self.end is None

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """Open the decompressed, UTF-8 (or single-byte) byte stream of this source."""
        with ExitStack() as stack:
            raw: IO[bytes]
            if self.member is None:
                raw = stack.enter_context(open(self.path, "rb"))
                stored = os.fstat(raw.fileno()).st_size
                compressed = False
            else:
                archive = _ARCHIVES.get(self.path)
                info = archive.getinfo(self.member)
                member = stack.enter_context(archive.open(info))
                # ZipExtFile.readline is pure Python; a C buffer in front makes lines cheap
                raw = cast(IO[bytes], io.BufferedReader(member, buffer_size=1 << 20))
                stored = info.compress_size
                compressed = info.compress_type != zipfile.ZIP_STORED
            stream, layers = _decompressed(raw, stack)
            if compressed or layers:
                stream = _bounded(stream, stored)
            yield _decoded(stream, stack)

    def plain_file(self) -> bool:
        """True when this source is an uncompressed file on disk (byte ranges are meaningful)."""
        if self.member is not None:
            return False
        if self.plain_size is not None:
            return True
        try:
            with open(self.path, "rb") as handle:
                magic = handle.read(4)
        except OSError:
            return False
        return not (
            magic.startswith((_GZIP_MAGIC, _ZIP_MAGIC, _EMPTY_ZIP_MAGIC))
            or _is_bzip2(magic)
            or magic.startswith(_UTF16_BOMS)
        )


def _is_bzip2(magic: bytes) -> bool:
    """bzip2 magic: "BZh" and a block-size digit (a text line may well start with "BZh")."""
    return magic.startswith(_BZIP2_MAGIC) and len(magic) >= 4 and magic[3] in b"123456789"


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(size)[:size])
    return b""


def _decompressed(raw: IO[bytes], stack: ExitStack) -> tuple[IO[bytes], int]:
    """Wrap ``raw`` in gzip/bz2 decompression when its magic bytes say so (nested too); also
    return how many layers were unwrapped."""
    stream: IO[bytes] = raw if hasattr(raw, "peek") else io.BufferedReader(cast(io.RawIOBase, raw))
    layers = 0
    for _ in range(4):  # a .gz inside a .bz2 is silly but cheap to allow; bombs are not loops
        magic = _peek(stream, 4)
        if magic.startswith(_GZIP_MAGIC):
            stream = stack.enter_context(cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb")))
        elif _is_bzip2(magic):
            stream = stack.enter_context(cast(IO[bytes], bz2.BZ2File(stream, mode="rb")))
        else:
            break
        layers += 1
    return stream, layers


class _BoundedStream(io.RawIOBase):
    """A decompressed stream that raises :class:`DecompressionLimit` past its bound."""

    def __init__(self, inner: IO[bytes], stored: int) -> None:
        self._inner = inner
        self._limit = min(MAX_DECOMPRESSED, max(RATIO_FLOOR, MAX_RATIO * max(1, stored)))
        self._stored = stored
        self._produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # small reads: a truncated stream raises inside one, and loses what that one decoded
        size = int(self._inner.readinto(buffer[:_BOUNDED_READ]) or 0)  # type: ignore[attr-defined]
        self._produced += size
        if self._produced > self._limit:
            raise DecompressionLimit(self._why())
        return size

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # a position, not a running total: the EVTX parser seeks back over what it read
        self._produced = self._inner.seek(offset, whence)
        return self._produced

    def tell(self) -> int:
        return self._produced

    def _why(self) -> str:
        if self._limit == MAX_DECOMPRESSED:
            return f"decompresses past {MAX_DECOMPRESSED >> 30} GiB: not read further"
        return (
            f"decompression bomb? {self._stored:,} compressed bytes decompress past"
            f" {self._produced:,} (ratio over {MAX_RATIO}): not read further"
        )


def _bounded(stream: IO[bytes], stored: int) -> IO[bytes]:
    raw = _BoundedStream(stream, stored)
    return cast(IO[bytes], io.BufferedReader(raw, buffer_size=1 << 20))


def _decoded(stream: IO[bytes], stack: ExitStack) -> IO[bytes]:
    """Transcode UTF-16 (with BOM) to UTF-8; drop a UTF-8 BOM."""
    head = _peek(stream, 3)
    if head.startswith(_UTF16_BOMS):
        text = stack.enter_context(io.TextIOWrapper(stream, encoding="utf-16", errors="replace"))
        return cast(IO[bytes], io.BufferedReader(_Utf8Transcoder(text), buffer_size=256 * 1024))
    if head.startswith(codecs.BOM_UTF8):
        stream.read(3)
    return stream


class _Utf8Transcoder(io.RawIOBase):
    """A raw byte stream of UTF-8 produced from a text stream."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            chunk = self._text.read(64 * 1024)
            if not chunk:
                break
            self._pending += chunk.encode("utf-8", "surrogatepass")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_head(source: Source, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` decoded bytes of a source (raises OSError and friends)."""
    chunks: list[bytes] = []
    with source.open() as stream:
        remaining = size
        while remaining > 0:
            try:
                chunk = stream.read(min(remaining, 8192))
            except (EOFError, OSError, zlib.error):
                if chunks:  # a truncated archive: sniff what there is; reading will report it
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    return b"".join(chunks)


class FileProbe(NamedTuple):
    """What one ``stat`` and one read of a file's first bytes tell about it.

    Readers of a folder of small logs (30 EVTX events a file is common) pay per file for every
    open, so sniffing, the zip check and the reader's own "is it compressed?" check share this
    (a named tuple: the cheapest record to build, once per file).
    """

    special: str | None = None
    """What the path is when it is neither a regular file nor a folder (a FIFO, a device...)."""
    head: bytes | None = None
    """The first bytes, raw; None when the file could not be stat-ed, opened or read (opening
    it again reports why) or is a folder."""
    size: int = 0

    @property
    def is_zip(self) -> bool:
        """True when the file is a zip archive (by its magic bytes)."""
        return self.head is not None and self.head[:4] in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)

    @property
    def decoded_head(self) -> bytes | None:
        """The head as :func:`read_head` would give it (no decompression, no transcoding to do),
        or None when the file is compressed, an archive or starts with a byte-order mark."""
        head = self.head
        if head is None or head.startswith(_NOT_PLAIN) or _is_bzip2(head):
            return None
        return head


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_NOT_PLAIN = (_GZIP_MAGIC, _ZIP_MAGIC, _EMPTY_ZIP_MAGIC, codecs.BOM_UTF8, *_UTF16_BOMS)


def _special_kind(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file"


def probe_file(path: str, size: int, more: Callable[[bytes], bool] | None = None) -> FileProbe:
    """Stat ``path`` and read its first ``size`` bytes (``HEAD_BYTES`` when ``more`` says the
    first ones are not enough), opening it once. A FIFO, socket or device is not opened:
    reading a FIFO with no writer blocks forever and ``/dev/zero`` never ends."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return FileProbe()  # missing or unreadable: opening it reports why
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return FileProbe()
    if not stat.S_ISREG(mode):
        return FileProbe(special=_special_kind(mode))
    try:
        # os.open/os.read: a third of the cost of open() and a file object, paid per file
        descriptor = os.open(path, _READ_FLAGS)
        try:
            head = _read_upto(descriptor, size)
            if more is not None and len(head) == size and more(head):
                head += _read_upto(descriptor, HEAD_BYTES - size)
        finally:
            os.close(descriptor)
    except (OSError, ValueError):
        return FileProbe()
    return FileProbe(head=head, size=info.st_size)


def _read_upto(descriptor: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(descriptor, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def split_member_path(path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``archive.zip!member`` -> (``archive.zip``, ``member``); a plain path -> (path, None)."""
    text = os.fspath(path)
    if MEMBER_SEPARATOR in text and not os.path.exists(text):
        archive, _, member = text.partition(MEMBER_SEPARATOR)
        if os.path.isfile(archive):
            return archive, member
    return text, None


def zip_members(path: str) -> list[str]:
    """Names of the file members of a zip archive, in archive order (raises on a bad zip)."""
    return [info.filename for info in _ARCHIVES.get(path).infolist() if not info.is_dir()]


def is_zip(head: bytes) -> bool:
    """True when a stream starting with ``head`` is a zip archive."""
    return head[:4] in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)


def _collector(into: list[str]) -> Callable[[OSError], None]:
    def collect(error: OSError) -> None:
        into.append(str(error.filename))

    return collect


def iter_input_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Every file under ``paths``, recursively, in a stable order.

    Directories are walked (version-control folders such as ``.git`` skipped, but hidden files
    kept: ``.bash_history`` is evidence); symbolic links to folders are followed, each real
    folder once (a link back up the tree is a loop, not more evidence). Anything else is yielded
    as given, including paths that do not exist or ``archive.zip!member`` paths, so that reading
    them reports a warning instead of the input vanishing silently.
    """
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            # A folder that cannot be listed is yielded itself: reading it reports "unreadable".
            failed: list[str] = []
            seen: set[tuple[int, int]] = set()
            for root, dirs, files in os.walk(path, onerror=_collector(failed), followlinks=True):
                while failed:
                    yield Path(failed.pop(0))
                try:
                    info = os.stat(root)
                except OSError:
                    dirs[:] = []
                    continue
                if (info.st_dev, info.st_ino) in seen:
                    dirs[:] = []  # reached again through a link: already read
                    continue
                seen.add((info.st_dev, info.st_ino))
                dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
                for name in sorted(files):
                    yield Path(root) / name
            while failed:
                yield Path(failed.pop(0))
        else:
            yield path
