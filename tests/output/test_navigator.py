"""The ATT&CK Navigator layer of a scan."""

from __future__ import annotations

import json
from pathlib import Path

from scanfakes import make_event

from vedette.events import AttackRef, Detection
from vedette.intel import AttackKB
from vedette.output.navigator import TechniqueTally, write_scan_layer


def test_layer_scores_techniques_by_detections(tmp_path: Path) -> None:
    tally = TechniqueTally()
    ps = (AttackRef("T1059.001"),)
    for _ in range(3):
        tally(Detection("r1", "Encoded PowerShell", "high", make_event("a", 1), attack=ps))
    tally(Detection("r2", "Dump", "high", make_event("a", 2), attack=(AttackRef("T1003.001"), *ps)))
    tally(Detection("r3", "No technique", "low", make_event("a", 3)))
    path = tmp_path / "layer.json"
    write_scan_layer(tally, path, name="scan", description="case", kb=AttackKB.load())
    layer = json.loads(path.read_text())
    assert layer["domain"] == "enterprise-attack"
    scores = {t["techniqueID"]: t.get("score") for t in layer["techniques"] if "score" in t}
    assert scores == {"T1003.001": 1, "T1059.001": 4}
    comment = next(t["comment"] for t in layer["techniques"] if t["techniqueID"] == "T1059.001")
    assert comment == "Encoded PowerShell (3); Dump (1)"
    assert layer["gradient"]["maxValue"] == 4
