"""Sigma detection: load rules with pySigma, compile them to a matching plan, evaluate events.

Public API::

    engine = Engine.from_paths(["rules/"], cache_dir=Path("~/.cache/vedette"))
    detections = engine.match(events)
    engine.load_report.errors      # every rule that did not load, with file, line and reason
"""

from __future__ import annotations

from vedette.detect.engine import Engine
from vedette.detect.loader import LoadReport
from vedette.detect.plan import RuleInfo, RuleLogSource

__all__ = ["Engine", "LoadReport", "RuleInfo", "RuleLogSource"]
