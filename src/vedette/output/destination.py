"""Where a scan writes its detections: never over evidence, never half a file that looks whole.

A regular output file is written under a hidden partial name beside it and renamed into place
only when the scan finished; an interrupted or failed scan removes the partial file, so the
previous output (if any) stays and no truncated file looks complete. A device or a pipe
(``/dev/stdout``, ``/dev/full``, a FIFO) is written directly. A write that fails says why in
words (a full disk is a full disk, not an internal error).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from vedette.errors import VedetteError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutputWriteError(VedetteError):
    """Writing an output failed (disk full, device gone); the message names the target."""


def os_error_text(exc: OSError) -> str:
    """Why a write failed, for a person: 'the disk is full' before the system's words."""
    if exc.errno in FULL_ERRNOS:
        return "the disk is full (" + (exc.strerror or "no space left") + ")"
    return exc.strerror or str(exc)


def refuse_inputs(option: str, target: Path | None, inputs: Sequence[Path]) -> None:
    """Raise when ``target`` is one of the inputs or an existing file under an input folder.

    Writing there would destroy the evidence (``scan e.jsonl -o e.jsonl`` truncated it before
    reading) or feed the previous output back in as events.
    """
    if target is None:
        return
    try:
        if target.exists() and not target.is_file():
            return  # a device or a FIFO is no evidence file
        resolved = target.resolve()
    except OSError:
        return
    for given in inputs:
        path = Path(str(given).split("!", 1)[0])  # 'logs.zip!member' names the archive
        try:
            if path.is_file():
                if target.exists() and path.samefile(target):
                    raise OutputWriteError(
                        f"{option} {target}: refusing to write over input {given}"
                    )
            elif path.is_dir() and target.exists() and resolved.is_relative_to(path.resolve()):
                raise OutputWriteError(
                    f"{option} {target}: refusing to write over a file inside input folder {given}"
                )
        except OSError:
            continue


class _GuardedStream:
    """A text stream whose write errors become :class:`OutputWriteError` naming the target."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._error(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (AttributeError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8") or "utf-8"

    def _error(self, exc: OSError) -> OutputWriteError:
        if isinstance(exc, BrokenPipeError):  # a closed pipe (| head) is an ordinary end
            raise exc
        return OutputWriteError(f"cannot write {self._name}: {os_error_text(exc)}")


def guarded(stream: TextIO, name: str) -> TextIO:
    """``stream`` with write errors raised as :class:`OutputWriteError` naming ``name``."""
    return _GuardedStream(stream, name)  # type: ignore[return-value]


class OutputTarget:
    """The detections' destination: standard output or ``path``; a context manager.

    ``stream`` is guarded (write errors name the target). :meth:`commit` after a finished
    scan puts a regular file in place; leaving the block without it removes the partial file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.partial: Path | None = None
        self._handle: TextIO | None = None
        if path is None:
            self.stream: TextIO = guarded(sys.stdout, "standard output")
            return
        direct = path.exists() and not path.is_file()
        target = path if direct else path.with_name(f".{path.name}.partial")
        try:
            self._handle = target.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputWriteError(f"-o: cannot write {path}: {os_error_text(exc)}") from None
        if not direct:
            self.partial = target
        self.stream = guarded(self._handle, str(path))

    def __enter__(self) -> OutputTarget:
        return self

    def commit(self) -> None:
        """Close the output and put a regular file in place under its name."""
        self.stream.flush()
        if self._handle is not None:
            self._close()
        if self.partial is not None and self.path is not None:
            os.replace(self.partial, self.path)
            self.partial = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            try:
                self._close()
            except OutputWriteError:
                if exc is None:
                    raise
        if self.partial is not None:
            # Interrupted or failed: no truncated file that reads as a complete timeline.
            self.partial.unlink(missing_ok=True)
            self.partial = None
            if exc_type is not None and self.path is not None:
                print(
                    f"vedette: {self.path} not written (the scan did not finish)", file=sys.stderr
                )

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.close()
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.path}: {os_error_text(exc)}") from None
