"""Shared fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests import the helper module `datasets` from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the scale-out pass, a contract test marked ``scaleout_excluded(reason)`` is skipped
    with its reason, so every run's summary lists what the scale-out set does not pass yet."""
    if os.environ.get("VEDETTE_TEST_CENTRE") != "scaleout":
        return
    for item in items:
        mark = item.get_closest_marker("scaleout_excluded")
        if mark is not None:
            reason = mark.args[0] if mark.args else "no reason given"
            item.add_marker(pytest.mark.skip(reason=f"not in the scale-out pass: {reason}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the scale-out pass's PostgreSQL of this process (xdist workers skip atexit)."""
    kit = sys.modules.get("scaleoutkit")
    if kit is not None:
        kit.stop_session()
