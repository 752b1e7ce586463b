"""Stopping `vedette scan` (SIGTERM, like Ctrl-C): workers gone, temporary files removed, 130.

Run as a real subprocess: signals and worker processes cannot be tested in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from datasets import dataset

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


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_sigterm_stops_workers_and_removes_temporary_files(tmp_path: Path) -> None:
    lsass = dataset(
        "otrf-security-datasets", "datasets", "compound", "LSASS_campaign_01",
        "metasploit_logonpasswords_lsass_memory_dump.zip",
    )  # fmt: skip
    for copy in range(8):  # long enough to be stopped midway on a fast machine
        (tmp_path / "case" / str(copy)).mkdir(parents=True)
        (tmp_path / "case" / str(copy) / "x.zip").symlink_to(lsass)
    rules = tmp_path / "noisy.yml"
    rules.write_text(NOISY)
    spill = tmp_path / "spill"
    command = [
        sys.executable, "-m", "vedette", "scan", str(tmp_path / "case"), "--rules", str(rules),
        "--no-cache", "-j", "2", "-f", "jsonl", "-o", os.devnull, "--no-progress",
        "--temp-dir", str(spill),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        workers = children(process.pid)
        if len(workers) >= 2 and any(spill.iterdir()):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the scan ended before it could be stopped"
    time.sleep(1.0)  # let the workers get going
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert list(spill.iterdir()) == []
