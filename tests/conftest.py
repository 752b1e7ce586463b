"""Shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

# Tests import the helper module `datasets` from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
