"""The spill to disk is bounded: past its limit, or near a full disk, the scan stops with a
clear message instead of filling the responder's disk (issue 15, safe by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.cli.main import main
from vedette.pipeline.build import DetectorConfig, build_detector
from vedette.rulepacks import starter_pack_dir
from vedette.scan.execute import ScanRequest, execute_scan
from vedette.scan.ordering import SpillLimitError
from vedette.scan.sources_input import SourcesInput

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_scan_past_its_spill_limit_stops_and_leaves_no_spill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    detector, _ = build_detector(
        DetectorConfig(rule_paths=(starter_pack_dir(),), cache_dir=tmp_path / "cache")
    )
    temp = tmp_path / "spill"
    # Unbounded, the sample scan spills several runs of one detection each...
    found: list[object] = []
    request = ScanRequest(paths=(SAMPLES,), jobs=jobs, temp_dir=temp, run_size=1, spill_threshold=1)
    execute_scan(request, detector, SourcesInput(), sinks=[found.append])
    assert len(found) > 3
    # ... bounded at one byte, it stops at the second run with the reason.
    monkeypatch.setenv("VEDETTE_MAX_SPILL_BYTES", "1")
    with pytest.raises(SpillLimitError, match="VEDETTE_MAX_SPILL_BYTES"):
        execute_scan(request, detector, SourcesInput(), sinks=[lambda d: None])
    assert list(temp.iterdir()) == []  # the spill folder is removed all the same


def test_near_a_full_disk_the_scan_stops_rather_than_fill_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector, _ = build_detector(
        DetectorConfig(rule_paths=(starter_pack_dir(),), cache_dir=tmp_path / "cache")
    )
    # A reserve larger than any disk: every spill would eat into it.
    monkeypatch.setenv("VEDETTE_SPILL_RESERVE_BYTES", str(2**62))
    request = ScanRequest(paths=(SAMPLES,), jobs=1, temp_dir=tmp_path / "spill", run_size=1)
    with pytest.raises(SpillLimitError, match="rather than fill the disk"):
        execute_scan(request, detector, SourcesInput(), sinks=[lambda d: None])


def test_an_ordinary_scan_that_spills_nothing_is_not_hindered_by_the_reserve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEDETTE_SPILL_RESERVE_BYTES", str(2**62))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # The command's runs are large: the sample's detections fit in memory, nothing spills,
    # so even an impossible reserve does not stop it (the bound is checked per spill only).
    code = main(["scan", str(SAMPLES), "-f", "jsonl", "-o", str(tmp_path / "out.jsonl"),
                 "--temp-dir", str(tmp_path / "spill")])  # fmt: skip
    assert code == 0  # nothing spilled: the bound is no obstacle to an ordinary scan
