"""Issue 15: the progress bar ends before the first row is printed, and counts detections
after the level filter (the number it shows is the number the table will show)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scanfakes import FakeEngine, FakeRule, MemoryInput, make_event

from vedette.events import Detection
from vedette.pipeline.detector import Detector
from vedette.scan.execute import ScanRequest, execute_scan
from vedette.scan.filters import DetectionFilter

RULES = (
    FakeRule("ps", "PowerShell", "Image", "powershell.exe", "medium"),
    FakeRule("dump", "LSASS dump", "Image", "procdump.exe", "high"),
    FakeRule("who", "Whoami", "Image", "whoami.exe", "low"),
)


class Recorder:
    """A progress sink that writes down what it was told, in order, beside the output."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.detections = 0

    def begin(self, files: int, total_bytes: int) -> None:
        self.log.append("begin")

    def update(self, *, files_done: int, bytes_done: int, events: int, detections: int) -> None:
        self.detections = detections
        self.log.append("update")

    def finish(self) -> None:
        self.log.append("finish")


def corpus() -> dict[str, list]:
    images = ("powershell.exe", "procdump.exe", "whoami.exe", "whoami.exe")
    return {
        f"case/f{f}.evtx": [
            make_event(f"case/f{f}.evtx", i, seconds=i, Image=images[(i + f) % 4])
            for i in range(20)
        ]
        for f in range(3)
    }


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_ends_before_output_and_counts_what_the_level_filter_keeps(
    tmp_path: Path, jobs: int
) -> None:
    log: list[str] = []
    progress = Recorder(log)
    out: list[Detection] = []

    def sink(detection: Detection) -> None:
        log.append("row")
        out.append(detection)

    request = ScanRequest(
        paths=(Path("case"),),
        jobs=jobs,
        temp_dir=tmp_path,
        filter=DetectionFilter.build(min_level="medium"),
    )
    execute_scan(
        request, Detector(engine=FakeEngine(*RULES)), MemoryInput(corpus()), sinks=(sink,),
        progress=progress,
    )  # fmt: skip
    assert out and {d.level for d in out} <= {"medium", "high"}
    assert "finish" in log and log.index("finish") < log.index("row")
    assert progress.detections == len(out)
