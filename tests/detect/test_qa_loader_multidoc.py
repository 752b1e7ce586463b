"""QA: one bad correlation document in a multi-document file costs only itself."""

from __future__ import annotations

from pathlib import Path

from vedette.detect import Engine

BASE = """\
title: SSH failed
id: aaaaaaaa-0000-4000-8000-000000000001
name: ssh_failed
level: low
logsource: {product: linux, service: sshd}
detection:
  sel: {message|contains: 'Failed password'}
  condition: sel
"""

GOOD_CORRELATION = """\
title: Burst
correlation:
  type: event_count
  rules: [ssh_failed]
  group-by: [hostname]
  timespan: 5m
  condition: {gte: 5}
level: high
"""

NO_FIELD = """\
title: Value count without a field
correlation:
  type: value_count
  rules: [ssh_failed]
  timespan: 5m
level: high
"""


def test_bad_correlation_does_not_take_the_file_down(tmp_path: Path) -> None:
    path = tmp_path / "ssh.yml"
    path.write_text("---\n".join([BASE, GOOD_CORRELATION, NO_FIELD]))
    engine = Engine.from_paths([path], scanner="none")
    report = engine.load_report
    assert [r.title for r in engine.rules] == ["SSH failed"]
    assert [c.title for c in engine.correlation_rules] == ["Burst"]
    assert len(report.errors) == 1
    error = report.errors[0]
    # The line of the bad document's title (line 1 is BASE's title; documents joined by ---).
    title_line = path.read_text().splitlines().index("title: Value count without a field") + 1
    assert (error.line, error.title) == (title_line, "Value count without a field")
    assert "field" in error.reason


def test_bad_first_document_spares_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "ssh.yml"
    path.write_text("---\n" + "---\n".join([NO_FIELD, BASE, GOOD_CORRELATION]))
    engine = Engine.from_paths([path], scanner="none")
    assert [r.title for r in engine.rules] == ["SSH failed"]
    assert [c.title for c in engine.correlation_rules] == ["Burst"]
    assert [(e.line, e.title) for e in engine.load_report.errors] == [
        (2, "Value count without a field")
    ]
