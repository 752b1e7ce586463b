"""Make the server test kit (``serverkit``) importable by the retro-hunt tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
