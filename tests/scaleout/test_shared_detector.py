"""Partition threads of one worker process share one compiled rule set: their matching must
not collide in Hyperscan's scratch space (ScratchInUseError dead-lettered good batches)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from datasets import dataset
from vedette.detect import Engine
from vedette.pipeline.detector import Detector
from vedette.server.partitions import _Serialised
from vedette.sources import ReadReport, read_events


def _hammer(detector_for_thread: list[Detector], events: list[object]) -> list[str]:
    errors: list[str] = []

    def run(detector: Detector) -> None:
        try:
            for start in range(0, len(events), 50):
                detector.match(events[start : start + 50])  # type: ignore[arg-type]
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(d,)) for d in detector_for_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_partition_threads_sharing_a_rule_set_match_without_scratch_collisions(
    tmp_path: Path,
) -> None:
    rules = dataset("sigma", "rules", "windows", "process_creation")
    engine = Engine.from_paths([rules], cache_dir=tmp_path / "cache")
    events: list[object] = []
    for path in sorted(dataset("evtx-attack-samples").rglob("*.evtx"))[:40]:
        for batch in read_events(path, report=ReadReport()):
            events.extend(batch)
    assert len(events) > 1000
    shared = Detector(engine=engine)
    # Bare sharing collides (this is what the lock is for: the test could fail)...
    # A collision needs two scans at once: rounds until one is seen (on a loaded machine the
    # threads run one at a time more often, so this may take many rounds, never forever).
    collided = False
    deadline = time.monotonic() + 300
    while not collided and time.monotonic() < deadline:
        collided = any("ScratchInUse" in e for e in _hammer([shared] * 4, events))
    assert collided, "no collision seen in 300 s: the check would prove nothing"
    # ... the partitions' serialised matchers never do, and find the same detections.
    lock = threading.Lock()
    serialised = [Detector(engine=_Serialised(engine, lock)) for _ in range(4)]  # type: ignore[arg-type]
    assert _hammer(serialised, events) == []
    expected = len(shared.match(events))  # type: ignore[arg-type]
    assert len(serialised[0].match(events)) == expected > 0  # type: ignore[arg-type]
