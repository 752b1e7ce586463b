"""Shared fixtures of the reader tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vedette.events import Event
from vedette.sources import ReadReport, read_events

ReadAll = Callable[..., tuple[list[Event], ReadReport]]


def _read_all(path: Path | str, **kwargs: Any) -> tuple[list[Event], ReadReport]:
    report = ReadReport()
    events = [e for batch in read_events(path, report=report, **kwargs) for e in batch]
    return events, report


@pytest.fixture
def read_all() -> ReadAll:
    """``read_all(path, **kwargs) -> (events, report)``: every event of a file."""
    return _read_all
