"""Windows Event XML exports, checked against the EVTX reader on the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import evtx

from datasets import dataset

SAMPLES = ("evtx-attack-samples",)


def _as_text(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return None if value is None else str(value).strip()


def _export(source: Path, target: Path, *, root: bool) -> int:
    parts = [r["data"].split("?>", 1)[1] for r in evtx.PyEvtxParser(str(source)).records()]
    body = "\n".join(parts)
    if root:
        body = '<?xml version="1.0" encoding="utf-8"?>\n<Events>' + body + "</Events>"
    target.write_text(body, encoding="utf-8")
    return len(parts)


def test_xml_export_reads_like_the_evtx(tmp_path: Path, read_all: Any) -> None:
    names = [
        ("Defense Evasion", "DE_104_system_log_cleared.evtx"),
        ("Defense Evasion", "DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx"),
        ("Defense Evasion", "Win_4985_T1186_Process_Doppelganging.evtx"),
    ]
    for index, (folder, name) in enumerate(names):
        source = dataset(*SAMPLES, folder, name)
        target = tmp_path / f"export{index}.xml"
        count = _export(source, target, root=index % 2 == 0)
        from_xml, report = read_all(target)
        from_evtx, _ = read_all(source)
        assert report.files == {"winxml": 1} and report.skipped == {}
        assert len(from_xml) == count == len(from_evtx)
        for mine, theirs in zip(from_xml, from_evtx, strict=True):
            assert mine.logsource == theirs.logsource
            assert mine.timestamp == theirs.timestamp
            assert mine.host == theirs.host
            for key, value in theirs.fields.items():
                assert _as_text(mine.fields.get(key)) == _as_text(value), (name, key)


def test_malformed_xml_keeps_events_before_it(tmp_path: Path, read_all: Any) -> None:
    source = dataset(*SAMPLES, "Defense Evasion", "Win_4985_T1186_Process_Doppelganging.evtx")
    target = tmp_path / "cut.xml"
    count = _export(source, target, root=True)
    text = target.read_text()
    target.write_text(text[: len(text) * 2 // 3])
    events, report = read_all(target)
    assert 0 < len(events) < count
    assert report.skipped == {"xml-parse": 1}
    assert report.warnings[0].line is not None
