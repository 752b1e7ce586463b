"""``--navigator FILE``: an ATT&CK Navigator layer of the techniques that fired.

Scores are detection counts; each technique's comment names the rules that fired for it.
The layer itself is built by ``vedette.intel.navigator`` (one layer format for the project).
"""

from __future__ import annotations

from pathlib import Path

from vedette.events import Detection
from vedette.intel.attack import AttackKB
from vedette.intel.navigator import navigator_layer, write_layer

COMMENT_RULES = 10
"""Rules named in a technique's comment, most frequent first."""


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

    def comments(self) -> dict[str, str]:
        """Per technique: ``"Rule A (3); Rule B (1)"``."""
        out = {}
        for tid, by_rule in self.rules.items():
            ranked = sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))[:COMMENT_RULES]
            out[tid] = "; ".join(f"{title} ({count})" for title, count in ranked)
        return out


def write_scan_layer(
    tally: TechniqueTally,
    path: Path,
    *,
    name: str,
    description: str,
    kb: AttackKB | None = None,
) -> None:
    """Write the Navigator layer of a scan's detections to ``path``."""
    layer = navigator_layer(
        tally.counts, name=name, description=description, comments=tally.comments(), kb=kb
    )
    write_layer(layer, path)
