"""The real scan input: ``vedette.sources`` readers behind the :class:`InputSource` interface."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vedette.errors import ReadWarning
from vedette.events import Event
from vedette.scan.inputs import SPLIT_TARGET_BYTES, ReadJob, ReadSummary
from vedette.sources import (
    DEFAULT_BATCH_SIZE,
    ReadReport,
    ReadTask,
    iter_input_files,
    plan_read_tasks,
    read_task,
)


@dataclass(slots=True, frozen=True)
class SourcesInput:
    """Files and folders read with the registered readers (sniffed, or ``format`` forced).

    ``threads`` is the EVTX parser's thread count per process: 0 (all cores) when the scan
    runs in one process, 1 when worker processes already use the cores.
    """

    format: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    threads: int = 0
    split_bytes: int = SPLIT_TARGET_BYTES
    exclude: frozenset[str] = frozenset()
    """Real paths never read: the scan's own output files, when written inside an input
    folder (they would otherwise be read back as evidence)."""

    def plan(self, paths: Sequence[Path]) -> tuple[list[ReadJob], list[ReadWarning]]:
        """A job per file (per archive member, per byte range of a large text file)."""
        jobs: list[ReadJob] = []
        warnings: list[ReadWarning] = []
        excluded_names = {os.path.basename(p) for p in self.exclude}
        for path in iter_input_files(paths):
            if path.name in excluded_names and os.path.realpath(path) in self.exclude:
                continue
            if not path.exists() and "!" not in str(path):
                warnings.append(
                    ReadWarning(path=str(path), reason="not-found", detail="no such file")
                )
                continue
            for task in plan_read_tasks(path, self.split_bytes, format=self.format):
                jobs.append(ReadJob(path=task.display, size=_task_size(task), task=task))
        return jobs, warnings

    def read(self, job: ReadJob, report: ReadReport) -> Iterator[list[Event]]:
        """Event batches of one job."""
        task: ReadTask = job.task
        return read_task(task, report=report, batch_size=self.batch_size, threads=self.threads)

    def new_report(self) -> ReadReport:
        """An empty read report."""
        return ReadReport()

    def merge(self, into: ReadReport, other: ReadReport) -> None:
        """Merge a worker's report."""
        into.merge(other)

    def summarize(self, report: ReadReport) -> ReadSummary:
        """Counts per format and skips per reason."""
        return ReadSummary(
            events_by_format=dict(report.events),
            files_by_format=dict(report.files),
            warnings=list(report.warnings),
            skipped_by_reason=dict(report.skipped),
        )


COMPRESSION_RATIO = 8
"""Assumed expansion of a .gz / .bz2 file: job sizes estimate work, which follows the text."""


def _task_size(task: ReadTask) -> int:
    """Bytes of log text a job will read: the work it stands for, used to plan the workers."""
    if task.end is not None:
        return task.end - task.start
    try:
        if task.member is not None:
            with zipfile.ZipFile(task.path) as archive:
                return archive.getinfo(task.member).file_size
        size = max(0, os.path.getsize(task.path) - task.start)
    except (OSError, KeyError, zipfile.BadZipFile):
        return 0
    if task.path.lower().endswith((".gz", ".bz2")):
        return size * COMPRESSION_RATIO
    return size
