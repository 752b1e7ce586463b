"""Correlation test fixtures; helpers live in ``corr_support`` beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corr_support import Factory


@pytest.fixture
def make() -> Factory:
    return Factory()
