"""The pipeline with the real engine and readers, including workers started with ``spawn``
(each rebuilds the detector from the rule paths and the compiled-rule cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets import dataset
from vedette.output.records import detection_record
from vedette.pipeline.build import DetectorConfig, WorkerFactory, build_detector
from vedette.scan.execute import ScanRequest, execute_scan
from vedette.scan.sources_input import SourcesInput

RULES = (
    "proc_creation_win_rundll32_process_dump_via_comsvcs.yml",
    "proc_creation_win_wmiprvse_spawning_process.yml",
    "proc_creation_win_whoami_priv_discovery.yml",
)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_match_the_single_process_scan(tmp_path: Path, start_method: str) -> None:
    folder = dataset("sigma", "rules", "windows", "process_creation")
    config = DetectorConfig(
        rule_paths=tuple(folder / name for name in RULES),
        cache_dir=tmp_path / "cache",
    )
    detector, facts = build_detector(config)
    assert facts.rules_loaded == len(RULES)
    inputs = (dataset("evtx-attack-samples", "Credential Access"),)
    runs = {}
    for jobs in (1, 2):
        found: list[dict[str, object]] = []
        result = execute_scan(
            ScanRequest(paths=inputs, jobs=jobs, start_method=start_method, temp_dir=tmp_path),
            detector,
            SourcesInput(threads=1),
            sinks=[lambda d, out=found: out.append(detection_record(d))],
            factory=WorkerFactory(config),
        )
        assert result.readable and result.stats.events_read > 500
        runs[jobs] = found
    assert runs[1] == runs[2]
    assert any(r["rule_id"] == "646ea171-dded-4578-8a4d-65e9822892e3" for r in runs[1])
