"""Time order for detections, with memory bounded by spilling sorted runs to disk.

A scan must print detections in event time, identically for any number of workers, and must
not hold every detection in memory when a noisy rule fires on millions of events. The
:class:`ExternalSorter` keeps at most ``run_size`` detections in memory; beyond that it sorts
them and spills them as a *run* (a file of pickled chunks), then merges all runs lazily with
``heapq.merge``. Workers spill their own runs and hand over the file names.
"""

from __future__ import annotations

import heapq
import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vedette.errors import VedetteError
from vedette.events import Detection
from vedette.pipeline.detector import chunked

SortKey = tuple[bool, int, str, str, int, int, int, str, tuple[str, ...]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CHUNK = 128
"""Detections per pickled chunk in a run file: large enough to amortise pickle overhead."""
_MAX_FAN_IN = 16
"""Runs merged at once; more runs are merged in passes so open files stay bounded."""


def event_time_key(when: datetime | None) -> int:
    """Microseconds since the epoch (naive times are taken as UTC); 0 when unknown."""
    if when is None:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICROSECOND


def detection_sort_key(detection: Detection) -> SortKey:
    """Total order: event time, then rule, source path and record; undated detections last."""
    event = detection.event
    source = event.source
    return (
        event.timestamp is None,
        event_time_key(event.timestamp),
        detection.rule_id,
        source.path if source is not None else "",
        _int(source.record_id if source is not None else None),
        _int(source.line if source is not None else None),
        _int(source.offset if source is not None else None),
        detection.kind,
        detection.matched,
    )


def _int(value: int | None) -> int:
    return -1 if value is None else value


def write_run(detections: list[Detection], directory: Path) -> Path:
    """Sort ``detections`` and write them as one run file in ``directory``; return its path."""
    detections.sort(key=detection_sort_key)
    return write_sorted(detections, directory)


MAX_SPILL_BYTES = 20 * 1024**3
"""Spill folder size past which a scan stops (``VEDETTE_MAX_SPILL_BYTES`` overrides)."""
FREE_RESERVE_BYTES = 1024**3
"""Free space a scan leaves on the spill folder's disk (``VEDETTE_SPILL_RESERVE_BYTES``)."""


class SpillLimitError(VedetteError):
    """The detections to sort would fill the disk: the scan stops instead."""


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def check_spill_room(directory: Path) -> None:
    """Raise :class:`SpillLimitError` when the spill folder is at its bound or its disk is
    nearly full (a noisy rule over a huge input must not fill the responder's disk)."""
    limit = _limit("VEDETTE_MAX_SPILL_BYTES", MAX_SPILL_BYTES)
    used = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                used += entry.stat(follow_symlinks=False).st_size
    if used >= limit:
        raise SpillLimitError(
            f"the scan stopped: its detections waiting to be sorted reached {used:,} bytes in "
            f"{directory} (limit {limit:,}); narrow it (--min-level, --exclude-rule, fewer "
            "inputs) or set VEDETTE_MAX_SPILL_BYTES"
        )
    disk = os.statvfs(directory)
    free = disk.f_bavail * disk.f_frsize
    reserve = _limit("VEDETTE_SPILL_RESERVE_BYTES", FREE_RESERVE_BYTES)
    if free < reserve:
        raise SpillLimitError(
            f"the scan stopped rather than fill the disk: {free:,} bytes left where it spills "
            f"({directory}); free space or point --temp-dir at another disk"
        )


def write_sorted(detections: Iterable[Detection], directory: Path) -> Path:
    """Write already sorted ``detections`` as one run file, a chunk at a time."""
    check_spill_room(directory)
    handle, name = tempfile.mkstemp(prefix="run-", suffix=".pickle", dir=directory)
    with os.fdopen(handle, "wb") as out:
        for chunk in chunked(detections, _CHUNK):
            pickle.dump(chunk, out, pickle.HIGHEST_PROTOCOL)
    return Path(name)


def read_run(path: Path) -> Iterator[Detection]:
    """Detections of a run file, in its (sorted) order, one chunk in memory at a time."""
    with path.open("rb") as source:
        while True:
            try:
                chunk: list[Detection] = pickle.load(source)
            except EOFError:
                return
            yield from chunk


class ExternalSorter:
    """Collects detections in any order; yields them in :func:`detection_sort_key` order.

    At most ``run_size`` detections are held in memory; the rest wait in sorted run files in
    ``directory``, which the caller owns (the scan removes it when it ends).
    """

    def __init__(self, directory: Path, *, run_size: int = 10_000) -> None:
        self.directory = directory
        self.run_size = max(1, run_size)
        self._buffer: list[Detection] = []
        self._runs: list[Path] = []
        self.count = 0

    @property
    def spilled_runs(self) -> int:
        """Number of run files written or adopted so far."""
        return len(self._runs)

    def add(self, detection: Detection) -> None:
        """Add one detection."""
        self._buffer.append(detection)
        self.count += 1
        if len(self._buffer) >= self.run_size:
            self._spill()

    def extend(self, detections: Iterable[Detection]) -> None:
        """Add many detections."""
        for detection in detections:
            self.add(detection)

    def adopt_run(self, path: Path, count: int) -> None:
        """Take over a sorted run file written by :func:`write_run` (a worker's spill)."""
        self._runs.append(path)
        self.count += count

    def _spill(self) -> None:
        if self._buffer:
            self._runs.append(write_run(self._buffer, self.directory))
            self._buffer = []

    def __iter__(self) -> Iterator[Detection]:
        """Every detection added, in order. Consumes the sorter."""
        self._buffer.sort(key=detection_sort_key)
        runs = self._runs
        while len(runs) + 1 > _MAX_FAN_IN:
            # Merge the oldest runs into one so the final merge keeps few files open.
            group, runs = runs[:_MAX_FAN_IN], runs[_MAX_FAN_IN:]
            merged = heapq.merge(*(read_run(p) for p in group), key=detection_sort_key)
            runs.append(write_sorted(merged, self.directory))
            for path in group:
                path.unlink(missing_ok=True)
        streams: list[Iterable[Detection]] = [read_run(p) for p in runs]
        buffer, self._buffer, self._runs = self._buffer, [], []
        streams.append(buffer)
        try:
            yield from heapq.merge(*streams, key=detection_sort_key)
        finally:
            for path in runs:
                path.unlink(missing_ok=True)
