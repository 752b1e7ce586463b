"""Forwarder tests' tools: marked real log lines, the real ``vedette forward`` command, and
counting what the centre stored per marker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serverkit import Centre

from datasets import dataset

VEDETTE = [sys.executable, "-m", "vedette"]
MARK = re.compile(rb"fwdmark=([a-z]+-[0-9]+)")


def loghub(name: str) -> list[str]:
    """Real log lines: ``Linux`` or ``OpenSSH`` (2,000 lines each)."""
    path = dataset("misc-logs", "syslog", "loghub", name, f"{name}_2k.log")
    return [line.rstrip() for line in path.read_text("utf-8", errors="replace").splitlines()]


def marked(lines: Sequence[str], tag: str, start: int = 0) -> list[str]:
    """Each line with a unique marker ``fwdmark=TAG-N`` appended to its message."""
    return [f"{line} fwdmark={tag}-{start + i}" for i, line in enumerate(lines)]


def append(path: Path, lines: Sequence[str]) -> None:
    """Append lines as a logging daemon does (one write per line, flushed)."""
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            handle.flush()


@dataclass
class Forward:
    """A running ``vedette forward`` with its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """What it printed so far (standard error and output)."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)

    def wait(self, timeout: float = 60) -> int:
        """Its exit code."""
        return self.process.wait(timeout)


def forward_args(paths: Sequence[Path], centre: Centre, token: str, state: Path) -> list[str]:
    """``vedette forward`` arguments with quick polls and short back-off for tests."""
    return [
        *VEDETTE,
        "forward",
        *map(str, paths),
        "--to",
        centre.url,
        "--token",
        token,
        "--state",
        str(state),
        "--poll",
        "0.2",
        "--progress-every",
        "2",
        "--max-backoff",
        "1",
    ]


def start_forward(args: Sequence[str], log_path: Path) -> Forward:
    """Start ``args`` in the background."""
    log = log_path.open("ab")
    process = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    return Forward(process, log_path)


def run_forward(args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``args`` to its end."""
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def stored_marks(centre: Centre, token: str) -> Counter[str]:
    """How many times each marker is among the centre's stored events (a hunt query)."""
    with centre.client(token) as http:
        answer = http.post(
            "/api/v1/hunt",
            json={
                "sql": "select regexp_extract(coalesce(raw, '') || ' ' || coalesce(fields, ''),"
                " 'fwdmark=([a-z]+-[0-9]+)', 1) as m, count(*) as n from events group by m",
                "limit": 10000,
            },
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert not body["truncated"]
    return Counter({str(m): int(n) for m, n in body["rows"]})


def wait_marks(centre: Centre, token: str, unit: str, count: int, timeout: float = 60) -> None:
    """Wait until the unit has ``count`` events stored."""
    centre.wait_stored(token, unit, count, timeout=timeout)


def assert_exactly_once(found: Counter[str], expected: Sequence[str]) -> None:
    """Every expected marker stored once, and nothing else."""
    wanted = Counter(m.decode() for line in expected for m in MARK.findall(line.encode()))
    missing = sorted(set(wanted) - set(found))
    twice = sorted(m for m, n in found.items() if n > 1)
    extra = sorted(set(found) - set(wanted))
    assert not missing, f"{len(missing)} lines never stored, e.g. {missing[:5]}"
    assert not twice, f"{len(twice)} lines stored more than once, e.g. {twice[:5]}"
    assert not extra, f"unexpected events stored: {extra[:5]}"
    assert found == wanted


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
