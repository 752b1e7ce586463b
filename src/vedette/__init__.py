"""Vedette: security monitoring and early warning (Sigma, threat intelligence, ATT&CK)."""

from __future__ import annotations

from vedette.errors import ReadWarning, RuleLoadError, VedetteError
from vedette.events import AttackRef, Detection, Event, LogSource, SourceRef

__version__ = "0.1.0"

__all__ = [
    "AttackRef",
    "Detection",
    "Event",
    "LogSource",
    "ReadWarning",
    "RuleLoadError",
    "SourceRef",
    "VedetteError",
    "__version__",
]
