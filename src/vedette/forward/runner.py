"""The forwarder's loop: find files, read what is new into the buffer, send the buffer.

One thread does it all, in small steps: a refresh of the watched files every ``poll``
seconds, at most ``read_chunk`` bytes per file per pass, and sending for about a second per
pass, so reading goes on (into the buffer, up to ``max_buffer_bytes``) while the centre is
away and sending resumes in read order when it is back.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vedette.errors import VedetteError
from vedette.forward.batching import MAX_BATCH_RECORDS, cut_batches, event_pieces, line_pieces
from vedette.forward.evtx import evtx_records
from vedette.forward.progress import Progress
from vedette.forward.sender import Backoff, Outcome, Sender
from vedette.forward.state import ForwardState
from vedette.forward.tailer import (
    EVTX,
    JSONL,
    Found,
    Tracked,
    discover,
    file_kind,
    locate,
    new_record,
    open_file,
    read_head,
    read_lines,
    same_content,
)
from vedette.sources import ReadReport

EVTX_COMMIT_EVENTS = 1000


class TokenRefused(VedetteError):
    """The centre refused the token (401/403): retrying cannot help."""


@dataclass(slots=True, frozen=True)
class ForwardConfig:
    """What to forward, where, and how patiently."""

    paths: tuple[Path, ...]
    url: str
    token: str
    state: Path
    unit: str | None = None
    once: bool = False
    poll: float = 0.5
    progress_every: float = 10.0
    max_backoff: float = 30.0
    rotate_grace: float = 5.0
    """How long a file renamed away may still grow before it is finished."""
    settle: float = 2.0
    """An EVTX file is read once it has not changed for this long (it may be still copying)."""
    read_chunk: int = 1 << 20
    batch_records: int = MAX_BATCH_RECORDS
    max_buffer_bytes: int = 256 << 20


@dataclass(slots=True)
class _Seen:
    """Size and time of a file at the last refresh, to tell a settled EVTX file."""

    found: Found
    since: float


class Forwarder:
    """Tails ``config.paths`` into the buffer in ``config.state`` and ships it to the centre."""

    def __init__(self, config: ForwardConfig, out: TextIO = sys.stderr) -> None:
        self.config = config
        self.out = out
        self.progress = Progress()
        self.state = ForwardState(config.state)
        self.sender = Sender(config.url, config.token, config.unit)
        self.backoff = Backoff(cap=config.max_backoff)
        self.tracked: dict[str, Tracked] = {r.uid: Tracked(r) for r in self.state.files()}
        self.seen: dict[str, _Seen] = {}
        self.unreadable: set[str] = set()
        self.next_attempt = 0.0
        self.stopping = False
        self.read_anything = True

    def stop(self) -> None:
        """Ask the loop to end after its current step (signal handlers call this)."""
        self.stopping = True

    def close(self) -> None:
        """Release files, connections and the state folder."""
        for tracked in self.tracked.values():
            if tracked.fd is not None:
                os.close(tracked.fd)
                tracked.fd = None
        self.sender.close()
        self.state.close()

    def say(self, message: str) -> None:
        """One line on the progress stream."""
        print(message, file=self.out, flush=True)

    def report(self) -> None:
        """The progress line: counts, backlog, the centre's state."""
        line = self.progress.line(
            len(self.tracked), self.state.backlog(), self.state.rejected_count()
        )
        self.say(line)

    def run(self) -> None:
        """Forward until stopped (or, with ``once``, until the centre has everything)."""
        config = self.config
        next_refresh = next_report = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now >= next_refresh:
                self.refresh(now)
                next_refresh = now + config.poll
            read = False
            if self.state.backlog().bytes < config.max_buffer_bytes:
                read = self.read_pass(now)
            sent = self.send_pass(now + 1.0)
            if now >= next_report:
                if next_report:
                    self.report()
                next_report = now + config.progress_every
            if config.once and not read and not self.read_anything and self._drained():
                return
            self.read_anything = read
            if not read and not sent:
                wait = config.poll
                if self.next_attempt > now:
                    wait = min(wait, self.next_attempt - now)
                time.sleep(max(0.01, wait))

    def _drained(self) -> bool:
        return self.state.backlog().batches == 0

    # --- files ------------------------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Match the files on disk with the tracked generations (rotation, truncation)."""
        found = discover(self.config.paths, exclude=(self.config.state,))
        by_identity = {(t.record.dev, t.record.ino): t for t in self.tracked.values()}
        here: set[str] = set()
        for identity, file in found.items():
            tracked = by_identity.get(identity)
            if tracked is None:
                kind = file_kind(file.path, read_head(file.path))
                if file.size == 0 or kind is None:
                    continue  # an empty file's kind is not known yet; a binary is not a log
                tracked = Tracked(new_record(file, kind))
                self.tracked[tracked.record.uid] = tracked
            tracked.away_since = None
            tracked.record.path = file.path
            here.add(tracked.record.uid)
            self._note(tracked.record.uid, file, now)
            if tracked.record.kind != EVTX:
                self._check_text(tracked, file)
        for uid, tracked in list(self.tracked.items()):
            if uid not in here:
                self._away(tracked, now)

    def _note(self, uid: str, file: Found, now: float) -> None:
        seen = self.seen.get(uid)
        if seen is None or (seen.found.size, seen.found.mtime_ns) != (file.size, file.mtime_ns):
            self.seen[uid] = _Seen(file, now)

    def _check_text(self, tracked: Tracked, file: Found) -> None:
        record = tracked.record
        if tracked.fd is None:
            tracked.fd = open_file(file.path, record.dev, record.ino)
            if tracked.fd is None:
                if file.path not in self.unreadable and not os.access(file.path, os.R_OK):
                    self.unreadable.add(file.path)  # said once, not at every poll
                    self.say(f"vedette forward: cannot read {file.path}: permission denied")
                return
        if not same_content(tracked.fd, record):
            self._new_generation(tracked, file)

    def _new_generation(self, tracked: Tracked, file: Found) -> None:
        """The file was truncated or replaced in place: read it again from its start."""
        old = tracked.record
        self.say(
            f"vedette forward: {old.path} was truncated or replaced; reading it from its start"
        )
        self.progress.generations += 1
        self.state.forget(old.uid)
        del self.tracked[old.uid]
        self.seen.pop(old.uid, None)
        fresh = Tracked(new_record(file, old.kind), fd=tracked.fd)
        self.tracked[fresh.record.uid] = fresh

    def _away(self, tracked: Tracked, now: float) -> None:
        """A generation no longer under a watched name: renamed away, or deleted."""
        record = tracked.record
        if tracked.away_since is None:
            tracked.away_since = now
        if record.kind == EVTX:
            self._finish(tracked)
            return
        if tracked.fd is None:
            path = locate(record)  # after a restart: the rotated file under its new name
            if path is not None:
                tracked.fd = open_file(path, record.dev, record.ino)
                record.path = path
            if tracked.fd is None or not same_content(tracked.fd, record):
                self.say(
                    f"vedette forward: {record.path} is gone; "
                    f"lines after byte {record.position:,} were not read"
                )
                self.progress.lost_files += 1
                self._finish(tracked)

    def _finish(self, tracked: Tracked) -> None:
        if tracked.fd is not None:
            os.close(tracked.fd)
            tracked.fd = None
        self.state.forget(tracked.record.uid)
        self.tracked.pop(tracked.record.uid, None)
        self.seen.pop(tracked.record.uid, None)

    def read_pass(self, now: float) -> bool:
        """Read what is new in every tracked file into the buffer; True when anything was."""
        read = False
        for tracked in list(self.tracked.values()):
            if self.stopping:
                break
            if tracked.record.kind == EVTX:
                read |= self._read_evtx(tracked, now)
            else:
                read |= self._read_text(tracked, now)
        return read

    def _read_text(self, tracked: Tracked, now: float) -> bool:
        record, fd = tracked.record, tracked.fd
        if fd is None:
            return False
        away = tracked.away_since
        final = self.config.once or (away is not None and now - away >= self.config.rotate_grace)
        chunk = read_lines(fd, record.position, record.tail, self.config.read_chunk, final=final)
        if chunk.end == record.position:
            if away is not None and final:
                self._finish(tracked)  # renamed away and read to its end
            return False
        pieces = line_pieces(chunk.lines, record.kind == JSONL)
        batches = list(cut_batches(record.uid, pieces, max_records=self.config.batch_records))
        info = os.fstat(fd)
        record.position, record.tail = chunk.end, chunk.tail
        record.size, record.mtime_ns = info.st_size, info.st_mtime_ns
        self.state.commit(record, batches)
        self.progress.records_read += sum(b.records for b in batches)
        return True

    def _read_evtx(self, tracked: Tracked, now: float) -> bool:
        record = tracked.record
        seen = self.seen.get(record.uid)
        if seen is None:
            return False
        file = seen.found
        if (record.size, record.mtime_ns) == (file.size, file.mtime_ns):
            return False  # this version was read whole
        settled = now - seen.since >= self.config.settle
        if not self.config.once and not settled:
            return False
        report = ReadReport()
        events = evtx_records(Path(file.path), record.position, report)
        while not self.stopping:
            part = list(itertools.islice(events, EVTX_COMMIT_EVENTS))
            if not part:
                break
            batches = list(
                cut_batches(record.uid, event_pieces(part), max_records=self.config.batch_records)
            )
            record.position = part[-1][0] + 1
            self.state.commit(record, batches)
            self.progress.records_read += len(part)
        if self.stopping:
            return True
        for warning in report.warnings[:5]:
            self.say(f"vedette forward: {file.path}: {warning}")
        record.size, record.mtime_ns = file.size, file.mtime_ns
        self.state.commit(record, [])
        return True

    # --- sending ----------------------------------------------------------------------

    def send_pass(self, until: float) -> bool:
        """Send buffered batches oldest first until ``until``; True when any was acknowledged."""
        if time.monotonic() < self.next_attempt:
            return False
        sent = False
        while not self.stopping and time.monotonic() < until:
            pending = self.state.pending(1)
            if not pending:
                break
            batch = pending[0]
            answer = self.sender.send(batch)
            if answer.outcome in (Outcome.STORED, Outcome.DUPLICATE):
                self.state.acknowledged(batch.id)
                if answer.outcome is Outcome.STORED:
                    self.progress.records_sent += batch.records
                else:
                    self.progress.records_duplicate += batch.records
                if self.backoff.failures:
                    self.say("vedette forward: the centre is taking events again")
                self.backoff.reset()
                self.progress.centre = "ok"
                sent = True
            elif answer.outcome is Outcome.REJECTED:
                self.state.reject(batch, answer.reason)
                self.progress.batches_rejected += 1
                self.say(
                    f"vedette forward: the centre refused a batch of {batch.records:,} records "
                    f"from {batch.path} ({answer.reason}); kept aside in the state folder"
                )
            elif answer.outcome is Outcome.FATAL:
                raise TokenRefused(answer.reason)
            else:
                delay = self.backoff.next_delay(answer.retry_after)
                self.next_attempt = time.monotonic() + delay
                self.progress.centre = f"unavailable ({answer.reason}); next try in {delay:.1f} s"
                if self.backoff.failures in (1, 4) or self.backoff.failures % 10 == 0:
                    self.say(f"vedette forward: {self.progress.centre}")
                break
        return sent
