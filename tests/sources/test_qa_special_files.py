"""QA: a named pipe or device among the inputs is reported, never opened (it would hang)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vedette.sources import ReadReport, iter_input_files, plan_read_tasks, read_events, read_task

LINE = b"Jun 14 15:16:01 combo sshd[19939]: Failed password for root from 10.0.0.1\n"

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")


@contextlib.contextmanager
def _unblocker(fifo: Path, after: float = 5.0) -> Iterator[None]:
    """If a regression opens the FIFO, a late writer lets that open return so the test fails
    instead of hanging the suite."""
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + after
        while not stop.wait(0.1):
            if time.monotonic() < deadline:
                continue
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def test_fifo_is_a_warning_and_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "initctl"
    os.mkfifo(fifo)
    report = ReadReport()
    with _unblocker(fifo):
        batches = list(read_events(fifo, report=report))
    assert batches == []
    assert [(w.path, w.reason) for w in report.warnings] == [(str(fifo), "not-a-file")]
    assert "named pipe" in report.warnings[0].detail


def test_fifo_in_a_folder_does_not_stop_the_rest(tmp_path: Path) -> None:
    (tmp_path / "auth.log").write_bytes(LINE * 3)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    report = ReadReport()
    events = []
    with _unblocker(fifo):
        for path in iter_input_files([tmp_path]):
            for task in plan_read_tasks(path):
                for batch in read_task(task, report=report):
                    events.extend(batch)
    assert len(events) == 3
    assert [w.reason for w in report.warnings] == ["not-a-file"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_device_is_not_read() -> None:
    report = ReadReport()
    assert list(read_events("/dev/zero", report=report)) == []
    assert report.warnings[0].reason == "not-a-file"
    assert "device" in report.warnings[0].detail
