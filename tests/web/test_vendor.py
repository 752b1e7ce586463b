"""The vendored front-end files are the pinned bytes (scripts/vendor_assets.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded_only("no centre: the vendored front-end files' bytes")

ROOT = Path(__file__).resolve().parents[2]


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "vendor_assets", ROOT / "scripts/vendor_assets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_files_match_their_pins() -> None:
    assert _tool().check() == []


def test_a_changed_file_is_reported(tmp_path: Path) -> None:
    tool = _tool()
    pins = json.loads(tool.PINS.read_text())
    item = pins["packages"][0]["files"][0]
    copy = tmp_path / "vendor.json"
    item["sha256"] = "0" * 64
    copy.write_text(json.dumps(pins))
    tool.PINS = copy
    problems = tool.check()
    assert len(problems) == 1 and item["to"] in problems[0]
