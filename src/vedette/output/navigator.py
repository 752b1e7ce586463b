"""``--navigator FILE``: an ATT&CK Navigator layer of the techniques that fired.

Scores are detection counts; each technique's comment names the rules that fired for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from vedette.events import Detection

NAVIGATOR_VERSION = "5.1.0"
LAYER_VERSION = "4.5"


class TechniqueTally:
    """Counts of detections and the rules behind them, per technique (a scan sink)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.rules: dict[str, dict[str, int]] = {}

    def __call__(self, detection: Detection) -> None:
        for ref in detection.attack:
            tid = ref.technique_id
            self.counts[tid] = self.counts.get(tid, 0) + 1
            by_rule = self.rules.setdefault(tid, {})
            by_rule[detection.rule_title] = by_rule.get(detection.rule_title, 0) + 1


def scan_layer(tally: TechniqueTally, *, name: str, description: str) -> dict[str, Any]:
    """A Navigator layer: one entry per technique, score = detections."""
    top = max(tally.counts.values(), default=1)
    techniques = []
    for tid in sorted(tally.counts):
        rules = sorted(tally.rules[tid].items(), key=lambda kv: (-kv[1], kv[0]))
        comment = "; ".join(f"{title} ({count})" for title, count in rules[:10])
        techniques.append(
            {
                "techniqueID": tid,
                "score": tally.counts[tid],
                "comment": comment,
                "enabled": True,
                "showSubtechniques": True,
            }
        )
    return {
        "name": name,
        "versions": {"navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION},
        "domain": "enterprise-attack",
        "description": description,
        "sorting": 3,
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": ["#ffe5b4", "#ff6666"], "minValue": 0, "maxValue": top},
        "legendItems": [],
        "showTacticRowBackground": False,
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
    }


def write_layer(layer: dict[str, Any], path: Path) -> None:
    """Write a layer as indented JSON."""
    path.write_bytes(orjson.dumps(layer, option=orjson.OPT_INDENT_2) + b"\n")
