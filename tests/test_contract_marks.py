"""Every test of the monitoring centre and of coordination says which set it holds for.

``scripts/check`` runs the tests marked ``contract`` a second time against the scale-out set
(``VEDETTE_TEST_CENTRE=scaleout``); a test marked neither ``contract`` nor ``embedded_only``
would silently drop out of that pass, and an ``embedded_only`` without its reason would hide
why. Collected in a subprocess with a small plugin that writes each test's marks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CENTRE_DIRS = ("server", "server_syslog", "coordination", "web")

PLUGIN = """
import json, os

def pytest_collection_modifyitems(session, config, items):
    found = {}
    for item in items:
        found[item.nodeid] = [
            [mark.name, [str(arg) for arg in mark.args]]
            for mark in item.iter_markers()
            if mark.name in ("contract", "embedded_only", "scaleout_excluded")
        ]
    with open(os.environ["MARKS_OUT"], "w") as out:
        json.dump(found, out)
"""


def collect_marks(tmp_path: Path, *paths: str) -> dict[str, list[list[object]]]:
    """Each collected test's ``contract`` / ``embedded_only`` marks, by node id."""
    (tmp_path / "marks_plugin.py").write_text(PLUGIN)
    out = tmp_path / "marks.json"
    env = {
        **os.environ,
        "MARKS_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "marks_plugin",
         "-p", "no:cacheprovider", *paths],
        cwd=TESTS.parent, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    found: dict[str, list[list[object]]] = json.loads(out.read_text())
    return found


def _names(marks: list[list[object]]) -> set[str]:
    return {str(mark[0]) for mark in marks}


def test_every_centre_and_coordination_test_is_contract_or_embedded_only(tmp_path: Path) -> None:
    found = collect_marks(tmp_path, *(f"tests/{d}" for d in CENTRE_DIRS))
    assert len(found) > 100, sorted(found)  # the folders were collected at all
    unmarked = [node for node, marks in found.items() if not _names(marks) - {"scaleout_excluded"}]
    assert not unmarked, f"mark these contract or embedded_only(reason): {unmarked}"
    both = [node for node, marks in found.items() if {"contract", "embedded_only"} <= _names(marks)]
    assert not both, f"contract and embedded_only at once: {both}"
    no_reason = [
        node
        for node, marks in found.items()
        for name, args in marks
        if name in ("embedded_only", "scaleout_excluded") and not (args and str(args[0]).strip())  # type: ignore[index]
    ]
    assert not no_reason, f"embedded_only and scaleout_excluded need their reason: {no_reason}"
    # An exclusion from the scale-out pass is of a contract test, and says so (never silent).
    stray = [
        node
        for node, marks in found.items()
        if "scaleout_excluded" in _names(marks) and "contract" not in _names(marks)
    ]
    assert not stray, f"scaleout_excluded on a test that is not contract: {stray}"
    assert any("contract" in _names(m) for m in found.values())


def test_the_check_catches_an_unmarked_test(tmp_path: Path) -> None:
    """The collector is honest: a test without a mark shows up without one."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "test_probe.py").write_text(
        "import pytest\n\n"
        "def test_bare():\n    pass\n\n"
        "@pytest.mark.embedded_only('a reason')\ndef test_marked():\n    pass\n"
    )
    found = collect_marks(tmp_path, str(probe))
    assert {node.rsplit("::", 1)[1]: marks for node, marks in found.items()} == {
        "test_bare": [],
        "test_marked": [["embedded_only", ["a reason"]]],
    }
