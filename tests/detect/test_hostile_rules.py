"""Hostile rule files (issue 15): one bad rule or file is refused alone, with file and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedette.detect import Engine
from vedette.detect.loader import load_placeholders
from vedette.errors import ConfigError
from vedette.events import Event, LogSource

PROCESS = LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"}))

GOOD = """
title: Whoami
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789abe
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\whoami.exe'}
    condition: selection
"""


def _deep_not(depth: int) -> str:
    return f"""
title: Deep
id: 0e7b3c5a-1b2c-4d5e-8f90-123456789abf
logsource: {{product: windows, category: process_creation}}
detection:
    selection: {{Image|endswith: '\\\\calc.exe'}}
    condition: {"not " * depth}selection
"""


@pytest.mark.parametrize("depth", [200, 1000])
def test_a_rule_too_deep_to_compile_is_refused_alone(tmp_path: Path, depth: int) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(GOOD)
    (rules / "deep.yml").write_text(_deep_not(depth))
    engine = Engine.from_paths([rules], scanner="hyperscan")
    event = Event({"Image": "C:\\Windows\\System32\\whoami.exe"}, logsource=PROCESS)
    assert [d.rule_title for d in engine.match([event])] == ["Whoami"]
    (error,) = engine.load_report.errors
    assert error.path.endswith("deep.yml")
    assert "nested" in error.reason


def test_a_deep_but_compilable_rule_still_works(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "deep.yml").write_text(_deep_not(20))  # even: the same as the selection
    engine = Engine.from_paths([rules], scanner="hyperscan")
    event = Event({"Image": "C:\\calc.exe"}, logsource=PROCESS)
    assert [d.rule_title for d in engine.match([event])] == ["Deep"]


BOMB = """a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def test_placeholder_file_with_aliases_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "placeholders.yml"
    path.write_text(BOMB)
    with pytest.raises(ConfigError, match="alias"):
        load_placeholders(path)


def test_plain_placeholder_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "placeholders.yml"
    path.write_text("admins: [alice, bob]\nhost: web1\n")
    assert load_placeholders(path) == {"admins": ["alice", "bob"], "host": ["web1"]}


RANGE_BOMB = GOOD.replace("title: Whoami", "title: Whoami\nname: whoami") + (
    """---
title: Range bomb
correlation:
    type: event_count
    rules: [whoami]
    group-by: &g [User, User, User, User, User, User, User, User, User]
    timespan: 1m
    condition: {gte: 3, lte: 4}
x1: &x1 [*g, *g, *g, *g, *g, *g, *g, *g, *g]
x2: &x2 [*x1, *x1, *x1, *x1, *x1, *x1, *x1, *x1, *x1]
x3: &x3 [*x2, *x2, *x2, *x2, *x2, *x2, *x2, *x2, *x2]
x4: &x4 [*x3, *x3, *x3, *x3, *x3, *x3, *x3, *x3, *x3]
x5: &x5 [*x4, *x4, *x4, *x4, *x4, *x4, *x4, *x4, *x4]
x6: &x6 [*x5, *x5, *x5, *x5, *x5, *x5, *x5, *x5, *x5]
x7: &x7 [*x6, *x6, *x6, *x6, *x6, *x6, *x6, *x6, *x6]
x8: &x8 [*x7, *x7, *x7, *x7, *x7, *x7, *x7, *x7, *x7]
"""
)


def test_range_correlation_with_aliases_is_refused_alone(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bomb.yml").write_text(RANGE_BOMB)
    engine = Engine.from_paths([rules], scanner="hyperscan")
    assert [rule.title for rule in engine.rules] == ["Whoami"]
    assert engine.correlation_rules == []
    (error,) = engine.load_report.errors
    assert error.path.endswith("bomb.yml") and error.line == 10
    assert "aliases" in error.reason and "(line 17)" in error.reason
