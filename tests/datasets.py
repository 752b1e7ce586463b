"""The one way tests find ``../shared/datasets``.

``VEDETTE_DATASETS`` overrides the default. When the data is missing, a test skips on a
developer's machine but fails when ``CI`` is set, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def datasets_root() -> Path:
    """Root of the shared datasets (may not exist)."""
    return Path(os.environ.get("VEDETTE_DATASETS", str(_DEFAULT)))


def dataset(*parts: str) -> Path:
    """Path of a shared dataset; skip (or fail under CI) when it is missing."""
    path = datasets_root().joinpath(*parts)
    if not path.exists():
        message = f"shared dataset missing: {path} (set VEDETTE_DATASETS)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
