"""The Python item index agrees with per-item evaluation, on generated globs and real events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import dataset
from vedette.detect import Engine
from vedette.detect.index import GlobTables, PythonScanner
from vedette.detect.matchers import EventView, item_test
from vedette.detect.plan import ANY, ONE, AnyOf, DetectionItem, Glob, GlobToken, RulePlan, make_glob
from vedette.events import Event

# A small alphabet so that generated globs and values actually meet.
LETTERS = "abAB\\-*?. é"
text = st.text(alphabet=LETTERS, max_size=8)
token = st.one_of(text, st.just(ANY), st.just(ONE))
glob_strategy = st.builds(
    make_glob, st.lists(token, max_size=5), st.booleans().map(lambda cased: cased)
)


def reference(tokens: tuple[GlobToken, ...], cased: bool, value: str) -> bool:
    """Independent glob semantics: fnmatch-like regex over the whole value."""
    pattern = "".join(".*" if t is ANY else "." if t is ONE else re.escape(str(t)) for t in tokens)
    flags = re.DOTALL | (0 if cased else re.IGNORECASE)
    if not cased:  # the plan lower-cases both sides; do the same for non-ASCII letters
        return re.fullmatch(pattern.lower(), value.lower(), re.DOTALL) is not None
    return re.fullmatch(pattern, value, flags) is not None


@settings(max_examples=300, deadline=None)
@given(
    globs=st.lists(glob_strategy, min_size=1, max_size=6),
    values=st.lists(st.text(alphabet=LETTERS, max_size=14), min_size=1, max_size=3),
    keyword=st.booleans(),
)
def test_index_agrees_with_reference(globs: list[Glob], values: list[str], keyword: bool) -> None:
    field = None if keyword else "Field"
    items = [DetectionItem(i, field, (g,)) for i, g in enumerate(globs)]
    items.append(DetectionItem(len(items), field, tuple(globs), match_all=True))
    items.append(DetectionItem(len(items), field, (AnyOf(tuple(globs)),)))
    plan = RulePlan(items=items)
    scanner = PythonScanner(plan)
    assert scanner.covered == frozenset(range(len(items)))
    fields = {"Field": values if len(values) > 1 else values[0], "other": 7}
    decided = GlobTables(items).decide(fields)
    view = EventView(fields)
    for item in items:
        assert (item.item_id in decided) is item_test(item)(view), item
    # and the closures agree with the independent reference
    strings = [*values, "7"] if keyword else values
    for i, glob in enumerate(globs):
        expected = any(reference(glob.tokens, glob.case_sensitive, s) for s in strings)
        assert (i in decided) is expected, (glob, strings)


@pytest.mark.slow
def test_python_index_agrees_with_reference_evaluation_on_real_events(tmp_path: Path) -> None:
    """Every SigmaHQ Windows rule over a sample of real EVTX events: same detections."""
    from vedette.sources import ReadReport, iter_input_files, read_events

    sigma = dataset("sigma")
    samples = dataset("evtx-attack-samples")
    events: list[Event] = []
    report = ReadReport()
    for index, path in enumerate(iter_input_files([samples])):
        if index % 4 == 0:  # every fourth file keeps the test short
            for batch in read_events(path, report=report):
                events.extend(batch)
    assert len(events) > 500
    paths = [sigma / "rules" / "windows", sigma / "rules-threat-hunting" / "windows"]
    fast = Engine.from_paths(paths, cache_dir=tmp_path, scanner="python")
    slow = Engine.from_paths(paths, cache_dir=tmp_path, scanner="none")

    def key(engine: Engine) -> set[tuple[int, str, tuple[str, ...]]]:
        return {(id(d.event), d.rule_id, d.matched) for d in engine.match(events)}

    found = key(fast)
    assert found == key(slow)
    assert found, "the sample should trigger some rules"
