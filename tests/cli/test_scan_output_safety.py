"""Issue 15 defects 10-12: a full disk, output over evidence, and a stopped scan's leftovers.

The signal test runs a real subprocess: signals and worker processes cannot be tested
in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datasets import dataset
from vedette.cli.main import main

NOISY = """\
title: Every Windows event
id: 0b0e7c8e-3c1f-4d55-9d7e-6d2b1b7a0f02
status: test
logsource: {product: windows}
detection:
  selection: {EventID|gt: 0}
  condition: selection
level: informational
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["scan", "--no-progress", "--no-cache", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def evidence(tmp_path: Path) -> tuple[Path, Path]:
    sample = dataset(
        "evtx-attack-samples", "Credential Access", "sysmon_10_1_memdump_comsvcs_minidump.evtx"
    )
    case = tmp_path / "case"
    case.mkdir()
    shutil.copy(sample, case / "host.evtx")
    rules = tmp_path / "noisy.yml"
    rules.write_text(NOISY)
    return case, rules


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["jsonl", "table", "csv"])
def test_a_full_disk_is_said_and_exits_1(
    capsys: pytest.CaptureFixture[str], evidence: tuple[Path, Path], fmt: str
) -> None:
    case, rules = evidence
    code, _, err = run(capsys, str(case), "--rules", str(rules), "-f", fmt, "-o", "/dev/full")
    assert code == 1, err
    assert "disk is full" in err
    assert "internal error" not in err and "None" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_for_the_summary_json_names_the_file(
    capsys: pytest.CaptureFixture[str], evidence: tuple[Path, Path], tmp_path: Path
) -> None:
    case, rules = evidence
    out = tmp_path / "d.jsonl"
    code, _, err = run(
        capsys, str(case), "--rules", str(rules), "-o", str(out), "--summary-json", "/dev/full"
    )
    assert code == 1, err
    assert "/dev/full" in err and "disk is full" in err
    assert "cannot write None" not in err


def test_output_over_an_input_file_is_refused_and_the_evidence_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evidence = tmp_path / "e.jsonl"
    line = json.dumps({"EventID": 1, "Image": "C:\\x.exe", "Channel": "Security"}) + "\n"
    evidence.write_text(line * 3)
    before = evidence.read_bytes()
    rules = tmp_path / "noisy.yml"
    rules.write_text(NOISY)
    code, _, err = run(capsys, str(evidence), "--rules", str(rules), "-o", str(evidence))
    assert code == 1, err
    assert "refusing to write over input" in err
    assert evidence.read_bytes() == before
    # The same file reached through a link, and as --summary-json, is refused too.
    link = tmp_path / "link.jsonl"
    link.symlink_to(evidence)
    code, _, err = run(capsys, str(evidence), "--rules", str(rules), "--summary-json", str(link))
    assert code == 1 and "refusing" in err
    assert evidence.read_bytes() == before


def test_output_over_a_file_inside_an_input_folder_is_refused(
    capsys: pytest.CaptureFixture[str], evidence: tuple[Path, Path]
) -> None:
    case, rules = evidence
    before = (case / "host.evtx").read_bytes()
    code, _, err = run(capsys, str(case), "--rules", str(rules), "-o", str(case / "host.evtx"))
    assert code == 1 and "inside input folder" in err
    assert (case / "host.evtx").read_bytes() == before


def test_a_new_output_inside_an_input_folder_is_not_read_back(
    capsys: pytest.CaptureFixture[str], evidence: tuple[Path, Path], tmp_path: Path
) -> None:
    case, rules = evidence
    out = case / "detections.jsonl"
    summary = tmp_path / "s.json"
    code, _, err = run(
        capsys, str(case), "--rules", str(rules), "-o", str(out), "--summary-json", str(summary)
    )
    assert code == 0, err
    facts = json.loads(summary.read_text())
    assert facts["files_read"] == 1 and facts["records_skipped"] == 0
    assert len(out.read_text().splitlines()) == facts["detections"] > 0
    assert sorted(p.name for p in case.iterdir()) == ["detections.jsonl", "host.evtx"]


def _spilling_scan(tmp_path: Path, output: Path) -> tuple[list[str], Path]:
    lsass = dataset(
        "otrf-security-datasets", "datasets", "compound", "LSASS_campaign_01",
        "metasploit_logonpasswords_lsass_memory_dump.zip",
    )  # fmt: skip
    for copy in range(6):
        (tmp_path / "case" / str(copy)).mkdir(parents=True)
        (tmp_path / "case" / str(copy) / "x.zip").symlink_to(lsass)
    rules = tmp_path / "noisy.yml"
    rules.write_text(NOISY)
    spill = tmp_path / "spill"
    command = [
        sys.executable, "-m", "vedette", "scan", str(tmp_path / "case"), "--rules", str(rules),
        "--no-cache", "-j", "2", "-o", str(output), "--no-progress", "--temp-dir", str(spill),
    ]  # fmt: skip
    return command, spill


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.5, 2.5])
def test_a_stopped_scan_leaves_no_spill_and_no_output_that_looks_complete(
    tmp_path: Path, signum: int, delay: float
) -> None:
    output = tmp_path / "out.jsonl"
    output.write_text("previous\n")  # the last finished scan's output must survive
    command, spill = _spilling_scan(tmp_path, output)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if spill.exists() and any(spill.iterdir()):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the scan ended before it could be stopped"
    time.sleep(delay)
    process.send_signal(signum)
    _, err = process.communicate(timeout=180)  # generous: a loaded CI machine is slow to stop
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    time.sleep(0.5)
    assert list(spill.iterdir()) == []
    assert output.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "noisy.yml", "out.jsonl", "spill"]
    assert b"not written" in err


def test_a_finished_scan_replaces_the_previous_output(
    capsys: pytest.CaptureFixture[str], evidence: tuple[Path, Path], tmp_path: Path
) -> None:
    case, rules = evidence
    out = tmp_path / "d.jsonl"
    out.write_text("previous\n")
    code, _, err = run(capsys, str(case), "--rules", str(rules), "-o", str(out))
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["rule_title"] == "Every Windows event" for line in lines)
    assert sorted(os.listdir(tmp_path)) == ["case", "d.jsonl", "noisy.yml"]
