"""The parallel scan runner: read jobs in worker processes, detections back to the parent.

Each worker gets the :class:`Detector`'s matching part once (inherited through ``fork`` where
the platform has it, so the compiled rule set is shared copy-on-write; otherwise built by a
picklable factory from the rule paths and the compiled-rule cache), reads jobs, matches every
batch and returns its detections and its read report. A worker whose detections for one job
pass ``spill_threshold`` writes them as a sorted run file and returns the file name instead,
so neither side ever holds an unbounded list. With ``jobs == 1`` everything runs in-process.

A file too big for one worker that cannot be split into byte ranges (an EVTX file, a member
of a zip archive) is *strided*: each of the N workers reads the whole file but matches only
every N-th batch. Parsing is cheap next to matching and costs less than shipping the events
between processes (measured: parsing the 53,698-event OTRF LSASS file takes 1.5 s of CPU,
pickling and unpickling its events 2.3 s), and the batches each worker matches are the same
on every run, so the output does not change.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import multiprocessing.sharedctypes
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vedette.errors import ReadWarning
from vedette.events import Detection, level_rank
from vedette.pipeline.detector import Detector
from vedette.scan.inputs import InputSource, ReadJob
from vedette.scan.ordering import ExternalSorter, SpillLimitError, write_run

DetectorFactory = Callable[[], Detector]


class Progress(Protocol):
    """Where the runner reports progress (a terminal bar, or nothing)."""

    def begin(self, files: int, total_bytes: int) -> None:
        """The work ahead."""
        ...

    def update(self, *, files_done: int, bytes_done: int, events: int, detections: int) -> None:
        """Totals so far."""
        ...

    def finish(self) -> None:
        """Reading is over: clear the bar before anything else is printed."""
        ...


class NoProgress:
    """Progress that shows nothing."""

    def begin(self, files: int, total_bytes: int) -> None:
        """Ignore."""

    def update(self, *, files_done: int, bytes_done: int, events: int, detections: int) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""


@dataclass(slots=True, frozen=True, kw_only=True)
class RunOptions:
    """How to run: worker count, where to spill, and the spill threshold."""

    jobs: int
    spill_dir: Path
    spill_threshold: int = 4_000
    poll_seconds: float = 0.25
    start_method: str | None = None
    """Worker start method; None: ``fork`` on Linux (the compiled rules are inherited),
    ``spawn`` elsewhere (each worker rebuilds them through the factory and the cache)."""
    min_level_rank: int = -1
    """Detections below this level rank are not counted in the progress (the output's
    ``--min-level`` drops them: the bar must not promise what the table will not show)."""
    fanout_min_bytes: int = 8 * 1024 * 1024
    """A job at least this large, and large against the whole input, is strided over all
    workers, so one big EVTX or zipped JSON file does not leave the other cores idle."""


@dataclass(slots=True)
class JobResult:
    """What one job produced, sent from a worker to the parent."""

    job: ReadJob
    report: Any
    detections: list[Detection]
    runs: list[tuple[Path, int]] = field(default_factory=list)
    events: int = 0
    counted: int = 0
    """Detections at or above the output's minimum level (what the progress bar counts)."""
    first_time: datetime | None = None
    last_time: datetime | None = None
    failure: ReadWarning | None = None


@dataclass(slots=True)
class RunOutcome:
    """Everything read: base detections (to be merged in order), the merged report, totals."""

    detections: ExternalSorter
    report: Any
    jobs: int
    events: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    plan_warnings: list[ReadWarning] = field(default_factory=list)
    failures: list[ReadWarning] = field(default_factory=list)


@dataclass(slots=True)
class _WorkerState:
    detector: Detector
    source: InputSource
    spill_dir: Path
    spill_threshold: int
    events: Any = None  # multiprocessing Value in a worker; None in-process
    found: Any = None
    min_level_rank: int = -1


_STATE: _WorkerState | None = None


def _init_worker(
    detector: Detector | DetectorFactory,
    source: InputSource,
    spill_dir: Path,
    spill_threshold: int,
    events: Any,
    found: Any,
    min_level_rank: int = -1,
) -> None:
    global _STATE
    # A worker stops when told to (SIGTERM from the parent) and leaves Ctrl-C to the parent,
    # whose handler may have been inherited through fork.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    built = detector if isinstance(detector, Detector) else detector()
    _STATE = _WorkerState(built, source, spill_dir, spill_threshold, events, found, min_level_rank)
    _freeze_loaded_objects()


def _freeze_loaded_objects() -> None:
    """Move the objects a worker built (compiled rules, indicator index, when it loads them
    itself rather than inheriting the parent's, frozen by ``pipeline.scan``) out of the garbage
    collector's generations: they live as long as the worker."""
    gc.collect()
    gc.freeze()


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to this worker when the parent process dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # without it an orphaned worker still stops after its current job


_PR_SET_PDEATHSIG = 1


def _run_job(job: ReadJob) -> JobResult:
    state = _STATE
    assert state is not None, "worker not initialised"
    return run_job(state, job)


def run_job(
    state: _WorkerState, job: ReadJob, on_batch: Callable[[int, int], None] | None = None
) -> JobResult:
    """Read one job and match its batches (every one, or its stride's); never raises."""
    report = state.source.new_report()
    part, parts = job.stride or (0, 1)
    # Every stride reads the whole file; only the first reports what reading found.
    result = JobResult(job=job, report=report if part == 0 else None, detections=[])
    pending = result.detections
    try:
        for index, batch in enumerate(state.source.read(job, report)):
            if index % parts != part:
                continue
            found = state.detector.match(batch)
            result.events += len(batch)
            counted = _counted(found, state.min_level_rank)
            result.counted += counted
            _widen_time_range(result, batch)
            if found:
                pending.extend(found)
                if len(pending) >= state.spill_threshold:
                    result.runs.append((write_run(pending, state.spill_dir), len(pending)))
                    pending.clear()
            if on_batch is not None:
                on_batch(len(batch), counted)
            elif state.events is not None:
                with state.events.get_lock():
                    state.events.value += len(batch)
                with state.found.get_lock():
                    state.found.value += counted
    except SpillLimitError:
        raise  # the disk, not the file: the whole scan stops
    except Exception as exc:  # a reader or rule bug must cost one file, not the scan
        result.failure = ReadWarning(
            path=job.path,
            reason="internal-error",
            detail=f"{type(exc).__name__}: {exc}",
            records=0,
        )
    return result


def _counted(found: Sequence[Detection], min_rank: int) -> int:
    if min_rank < 0:
        return len(found)
    return sum(1 for d in found if level_rank(d.level) >= min_rank)


def _widen_time_range(result: JobResult, batch: Sequence[Any]) -> None:
    times = [e.timestamp for e in batch if e.timestamp is not None]
    if not times:
        return
    low, high = min(times), max(times)
    if result.first_time is None or low < result.first_time:
        result.first_time = low
    if result.last_time is None or high > result.last_time:
        result.last_time = high


class ScanRunner:
    """Runs the read-and-match phase of a scan over many jobs, in parallel when asked."""

    def __init__(
        self,
        detector: Detector,
        source: InputSource,
        options: RunOptions,
        *,
        factory: DetectorFactory | None = None,
        progress: Progress | None = None,
        run_size: int = 10_000,
    ) -> None:
        self.detector = detector
        self.source = source
        self.options = options
        self.factory = factory
        self.progress: Progress = progress or NoProgress()
        self.run_size = run_size
        self._files_done = self._bytes_done = 0

    def run(self, paths: Sequence[Path]) -> RunOutcome:
        """Plan, read and match everything under ``paths``."""
        jobs, plan_warnings = self.source.plan(paths)
        # Largest first so one big file does not start last and leave a core idle.
        jobs.sort(key=lambda j: (-j.size, j.path))
        outcome = RunOutcome(
            detections=ExternalSorter(self.options.spill_dir, run_size=self.run_size),
            report=self.source.new_report(),
            jobs=len(jobs),
            plan_warnings=plan_warnings,
        )
        self.progress.begin(len(jobs), sum(j.size for j in jobs))
        jobs = self._strided(jobs)
        workers = max(1, min(self.options.jobs, len(jobs)))
        results = self._in_process(jobs) if workers <= 1 else self._in_pool(jobs, workers)
        found = 0
        try:
            for result in results:
                self._absorb(outcome, result)
                found += result.counted
                if result.job.stride is None or result.job.stride[0] == 0:
                    self._files_done += 1
                self._bytes_done += result.job.size
                self._tick(outcome.events, found)
        finally:
            # Interrupted: stop the workers now, not when the traceback is freed, so none is
            # still writing a run file when the caller removes the spill folder.
            results.close()
        self.progress.finish()
        return outcome

    def _tick(self, events: int, detections: int) -> None:
        self.progress.update(
            files_done=self._files_done,
            bytes_done=self._bytes_done,
            events=events,
            detections=detections,
        )

    def _strided(self, jobs: list[ReadJob]) -> list[ReadJob]:
        """Jobs with each one too big for one worker (at least the threshold and a 2*N-th of
        the input) replaced by N strides; order kept."""
        parts = self.options.jobs
        if parts <= 1:
            return jobs
        floor = max(self.options.fanout_min_bytes, sum(j.size for j in jobs) // (2 * parts))
        out: list[ReadJob] = []
        for job in jobs:
            if job.size < floor or job.stride is not None:
                out.append(job)
                continue
            size = job.size // parts
            out.extend(replace(job, size=size, stride=(part, parts)) for part in range(parts))
        return out

    def _absorb(self, outcome: RunOutcome, result: JobResult) -> None:
        if result.report is not None:
            self.source.merge(outcome.report, result.report)
        outcome.events += result.events
        if result.first_time is not None and (
            outcome.first_time is None or result.first_time < outcome.first_time
        ):
            outcome.first_time = result.first_time
        if result.last_time is not None and (
            outcome.last_time is None or result.last_time > outcome.last_time
        ):
            outcome.last_time = result.last_time
        for path, count in result.runs:
            outcome.detections.adopt_run(path, count)
        outcome.detections.extend(result.detections)
        # Strides of one file meet the same reader failure; it is one failure.
        if result.failure is not None and result.failure not in outcome.failures:
            outcome.failures.append(result.failure)

    def _in_process(self, jobs: list[ReadJob]) -> Generator[JobResult, None, None]:
        state = _WorkerState(
            self.detector.for_worker(),
            self.source,
            self.options.spill_dir,
            self.options.spill_threshold,
            min_level_rank=self.options.min_level_rank,
        )
        totals = {"events": 0, "found": 0}

        def on_batch(events: int, found: int) -> None:
            totals["events"] += events
            totals["found"] += found
            self._tick(totals["events"], totals["found"])

        # (pipeline.scan freezes the loaded objects of this process for the whole scan)
        for job in jobs:
            yield run_job(state, job, on_batch)

    def _in_pool(self, jobs: list[ReadJob], workers: int) -> Generator[JobResult, None, None]:
        context = _pool_context(self.options.start_method)
        events = context.Value("q", 0)
        found = context.Value("q", 0)
        # Under fork the detector is inherited, not pickled; elsewhere a factory rebuilds it.
        payload: Detector | DetectorFactory = self.detector.for_worker()
        if context.get_start_method() != "fork" and self.factory is not None:
            payload = self.factory
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(
                payload,
                self.source,
                self.options.spill_dir,
                self.options.spill_threshold,
                events,
                found,
                self.options.min_level_rank,
            ),
        )
        finished = False
        try:
            futures: dict[Future[JobResult], ReadJob] = {pool.submit(_run_job, j): j for j in jobs}
            pending = set(futures)
            while pending:
                done, pending = wait(
                    pending, timeout=self.options.poll_seconds, return_when=FIRST_COMPLETED
                )
                for future in done:
                    yield self._collect(future, futures.pop(future))
                self._tick(events.value, found.value)
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # interrupted: the workers must not finish their files for nobody
                pool.shutdown(wait=False, cancel_futures=True)
                _terminate_workers(pool)

    def _collect(self, future: Future[JobResult], job: ReadJob) -> JobResult:
        try:
            return future.result()
        except SpillLimitError:
            raise
        except BrokenProcessPool as exc:
            reason, detail = "worker-died", f"the worker process stopped ({exc})"
        except Exception as exc:
            reason, detail = "internal-error", f"{type(exc).__name__}: {exc}"
        failure = ReadWarning(path=job.path, reason=reason, detail=detail, records=0)
        return JobResult(job=job, report=self.source.new_report(), detections=[], failure=failure)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop running work; its process table is the only
    # handle on the workers (stable across CPython 3.8 to 3.13).
    processes = dict(getattr(pool, "_processes", None) or {})
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        process.join(timeout=5)


def _pool_context(method: str | None) -> multiprocessing.context.BaseContext:
    # fork shares the compiled rule set copy-on-write; macOS and Windows lack a safe fork.
    if method is None:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)
