"""Make the in-memory scan fakes (``scanfakes``, in ``tests/scan``) importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scan"))
