"""A progress bar on stderr while a scan works: files, events, detections, rate.

Shown only when stderr is a terminal, so pipes, files and CI logs stay clean.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class TerminalProgress:
    """The runner's progress sink, drawn with rich; a context manager."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.console = Console(file=stream or sys.stderr)
        self.progress = Progress(
            TextColumn("[bold]scanning"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            TextColumn("{task.fields[events]} events"),
            TextColumn("{task.fields[detections]} detections"),
            TextColumn("{task.fields[rate]} ev/s"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # No refresh thread: worker processes are forked while this bar is alive, and
            # forking beside a running thread is unsafe. The runner updates often enough.
            auto_refresh=False,
        )
        self._last_refresh = 0.0
        self.task: TaskID | None = None
        self.started = time.perf_counter()
        self.total_files = 0

    def __enter__(self) -> TerminalProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def begin(self, files: int, total_bytes: int) -> None:
        """Show the work ahead (the bar measures bytes)."""
        self.total_files = files
        self.started = time.perf_counter()
        self.task = self.progress.add_task(
            "scan",
            total=max(total_bytes, 1),
            files=f"0/{files}",
            events="0",
            detections="0",
            rate="-",
        )

    def update(self, *, files_done: int, bytes_done: int, events: int, detections: int) -> None:
        """Totals so far."""
        if self.task is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        self.progress.update(
            self.task,
            completed=bytes_done,
            files=f"{files_done}/{self.total_files}",
            events=f"{events:,}",
            detections=f"{detections:,}",
            rate=f"{events / elapsed:,.0f}",
        )
        now = time.perf_counter()
        if now - self._last_refresh >= 0.1:
            self._last_refresh = now
            self.progress.refresh()

    def finish(self) -> None:
        """Reading is over: the bar goes (it is transient) before the timeline is printed."""
        self.progress.stop()


@contextlib.contextmanager
def loading_status(stream: TextIO, what: str) -> Iterator[None]:
    """A spinner while rules compile (seconds when the cache is cold). Its refresh thread is
    stopped before the scan forks its workers."""
    console = Console(file=stream)
    with console.status(f"[bold]{escape(what)}"):
        yield


def wants_progress(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr by default) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
