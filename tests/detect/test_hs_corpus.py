"""Differential test on real data: the Hyperscan scanner and the items' Python closures agree.

The whole SigmaHQ Windows corpus (rules, threat-hunting, emerging-threats) and real attack
recordings from evtx-attack-samples: for every event, the set of covered items the scanner says
are true must equal the set the reference closures say are true. This is the test that caught a
Hyperscan (Vectorscan 5.4) false negative with one corpus-wide database; see hs_patterns.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets import dataset
from vedette.detect import (
    Engine,
    hs_scanner,  # a required dependency: a broken import must fail
)
from vedette.detect.matchers import EventView, item_test
from vedette.events import Event, LogSource
from vedette.sources import read_events
from vedette.sources.report import ReadReport

WINDOWS_RULES = ("rules/windows", "rules-threat-hunting/windows", "rules-emerging-threats")
# Every third recording keeps the test near a minute while covering every tactic folder
# (Sysmon, Security, PowerShell, System channels alike).
STRIDE = 3


@pytest.fixture(scope="module")
def corpus_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = dataset("sigma")
    cache = tmp_path_factory.mktemp("hs-cache")
    return Engine.from_paths(
        [root / folder for folder in WINDOWS_RULES], scanner="none", cache_dir=cache
    )


@pytest.fixture(scope="module")
def attack_events() -> list[Event]:
    files = sorted(dataset("evtx-attack-samples").rglob("*.evtx"))[::STRIDE]
    report = ReadReport()
    events: list[Event] = []
    for path in files:
        for batch in read_events(Path(path), report=report):
            events.extend(batch)
    assert len(events) > 1000
    return events


@pytest.mark.slow
def test_scanner_equals_python_on_corpus_and_attack_samples(
    corpus_engine: Engine, attack_events: list[Event], tmp_path: Path
) -> None:
    plan = corpus_engine.plan
    scanner = hs_scanner.HyperscanScanner(plan, tmp_path)
    covered = scanner.covered
    # Every item that is all globs is covered; the rest are regex, cidr, numbers, fieldref...
    assert len(covered) > 0.95 * len(plan.items)
    tests = {i: item_test(plan.items[i]) for i in covered}
    decided = scanner.decide(attack_events)
    # The scanner may skip items of rules that do not apply to the event's logsource: compare
    # the items the engine would look at.
    admitted: dict[LogSource, set[int]] = {}
    mismatches = []
    for event, got in zip(attack_events, decided, strict=True):
        ids = admitted.get(event.logsource)
        if ids is None:
            ids = admitted[event.logsource] = {
                i
                for rule in plan.rules
                if rule.info.logsource.admits(event.logsource)
                for i in rule.item_ids
                if i in covered
            }
        view = EventView(event.fields)
        want = {i for i in ids if tests[i](view)}
        got = got & ids
        if got != want:
            mismatches.append((event.source, sorted(want - got)[:5], sorted(got - want)[:5]))
    assert not mismatches, f"{len(mismatches)} events differ (missing, extra): {mismatches[:10]}"
    assert any(decided), "no covered item was true on any attack sample"
