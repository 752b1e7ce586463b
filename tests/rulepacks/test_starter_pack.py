"""The bundled starter pack: every rule loads, is well described, and fires exactly where it should.

Each rule ``starter/<stem>.yml`` has a case file ``cases/<stem>.yml`` with the event logsource,
one ``match`` event the rule must fire on and one ``miss`` event (a close miss) it must not.
For a correlation rule, ``match`` and ``miss`` are each a sequence of events (``_at``: seconds
from the start), run through the whole pack's engine and the correlator. Corpus-wide checks
collect every problem and fail once with the full list.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from vedette.correlate import Correlator
from vedette.detect import Engine
from vedette.events import Detection, Event, LogSource
from vedette.intel import AttackKB
from vedette.normalize.tables import source_table
from vedette.normalize.windows import normalize_windows
from vedette.rulepacks import starter_pack_dir
from vedette.sources.syslog import classify_syslog

CASES = Path(__file__).resolve().parent / "cases"
LEVELS = {"informational", "low", "medium", "high", "critical"}
STATUSES = {"stable", "test", "experimental"}
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}  # fmt: skip


def rule_files() -> list[Path]:
    return sorted(starter_pack_dir().glob("*.yml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]


@cache
def starter_engine() -> Engine:
    return Engine.from_paths([starter_pack_dir()])


@dataclass(frozen=True)
class Case:
    stem: str
    rule_id: str
    logsource: LogSource
    correlation: bool
    match: tuple[tuple[dict[str, Any], ...], ...]
    miss: tuple[tuple[dict[str, Any], ...], ...]


def _runs(value: Any, correlation: bool) -> tuple[tuple[dict[str, Any], ...], ...]:
    """Event runs to try: one sequence for a correlation, else each event on its own."""
    events = tuple(value) if isinstance(value, list) else (value,)
    return (events,) if correlation else tuple((e,) for e in events)


def load_cases() -> Iterator[Case]:
    for path in sorted(CASES.glob("*.yml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        rule = documents(starter_pack_dir() / path.name)[0]
        source = data["logsource"]
        correlation = "correlation" in rule
        yield Case(
            stem=path.stem,
            rule_id=str(rule["id"]),
            logsource=LogSource(
                product=source.get("product"),
                services=frozenset(source.get("services", ())),
                categories=frozenset(source.get("categories", ())),
            ),
            correlation=correlation,
            match=_runs(data["match"], correlation),
            miss=_runs(data["miss"], correlation),
        )


def fired(case: Case, run: tuple[dict[str, Any], ...]) -> bool:
    """Whether the case's rule fires on a run of events (through the correlator if needed)."""
    engine = starter_engine()
    events = [
        Event(
            fields={k: v for k, v in fields.items() if not k.startswith("_")},
            logsource=case.logsource,
            timestamp=START + timedelta(seconds=fields.get("_at", 0)),
            host="case",
        )
        for fields in run
    ]
    detections: list[Detection] = engine.match(events)
    if case.correlation:
        correlator = Correlator.from_engine(engine)
        detections.sort(key=lambda d: d.timestamp or START)
        detections = correlator.process(detections) + correlator.flush()
    return any(d.rule_id == case.rule_id for d in detections)


def test_pack_has_at_least_30_rules_covering_windows_and_linux() -> None:
    rules = [documents(p)[0] for p in rule_files()]
    products = [r["logsource"].get("product") for r in rules if "detection" in r]
    assert len(products) >= 30
    assert products.count("windows") >= 15 and products.count("linux") >= 8


def test_every_rule_loads_with_zero_errors() -> None:
    report = starter_engine().load_report
    assert [str(e) for e in report.errors] == []
    all_documents = [d for p in rule_files() for d in documents(p)]
    assert len(starter_engine().rules) == sum(1 for d in all_documents if "detection" in d)
    assert len(starter_engine().correlation_rules) == sum(
        1 for d in all_documents if "correlation" in d
    )
    assert Correlator.from_engine(starter_engine()).load_errors == []


def test_every_rule_is_complete_and_unique() -> None:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in rule_files():
        for rule in documents(path):
            name = path.name
            rule_id = str(rule.get("id", ""))
            try:
                uuid.UUID(rule_id)
            except ValueError:
                problems.append(f"{name}: id {rule_id!r} is not a UUID")
            if rule_id in seen:
                problems.append(f"{name}: id {rule_id} also used by {seen[rule_id]}")
            seen[rule_id] = name
            if rule.get("level") not in LEVELS:
                problems.append(f"{name}: level {rule.get('level')!r}")
            if rule.get("status") not in STATUSES:
                problems.append(f"{name}: status {rule.get('status')!r}")
            if rule.get("author") != "Vedette project":
                problems.append(f"{name}: author {rule.get('author')!r}")
            needed = ("title", "description", "date")
            needed += ("correlation",) if "correlation" in rule else ("logsource", "detection")
            for key in needed:
                if not rule.get(key):
                    problems.append(f"{name}: no {key}")
            tags = rule.get("tags") or []
            if not any(TECHNIQUE.match(t) for t in tags):
                problems.append(f"{name}: no ATT&CK technique tag")
            if not any(t.removeprefix("attack.") in TACTICS for t in tags):
                problems.append(f"{name}: no ATT&CK tactic tag")
            if not rule.get("falsepositives"):
                problems.append(f"{name}: no falsepositives")
            if not (CASES / name).is_file():
                problems.append(f"{name}: no case file tests/rulepacks/cases/{name}")
    assert problems == []


def test_every_case_file_belongs_to_a_rule() -> None:
    orphans = [p.name for p in CASES.glob("*.yml") if not (starter_pack_dir() / p.name).is_file()]
    assert orphans == []


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.stem)
def test_rule_fires_on_its_match_event(case: Case) -> None:
    for run in case.match:
        assert fired(case, run), f"{case.stem} did not fire on {run}"


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.stem)
def test_rule_ignores_its_close_miss(case: Case) -> None:
    for run in case.miss:
        assert not fired(case, run), f"{case.stem} fired on its close miss {run}"


def test_pysigma_validators_find_nothing() -> None:
    # pySigma's own rule checks (dangling detections, duplicate titles, wildcards that should be
    # modifiers, ...); the tag validators that download ATT&CK data are left out (offline).
    from sigma.collection import SigmaCollection
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators

    collection = SigmaCollection.load_ruleset([str(p) for p in rule_files()])
    online = {"attacktag", "d3_fendtag", "cartag"}
    validator = SigmaValidator([v for name, v in validators.items() if name not in online])
    issues = validator.validate_rules(collection.rules)
    assert [
        f"{type(i).__name__}: {[r.source.path.name for r in i.rules if r.source]}" for i in issues
    ] == []


def test_attack_tags_name_real_techniques_of_their_tactics() -> None:
    # Every technique tag exists in the bundled ATT&CK table, and at least one of its tactics is
    # among the rule's tactic tags.
    kb = AttackKB.load()
    problems = []
    for path in rule_files():
        for rule in documents(path):
            tags = [t.removeprefix("attack.") for t in rule.get("tags", [])]
            tactics = {t for t in tags if t in TACTICS}
            for tag in tags:
                if not TECHNIQUE.match("attack." + tag):
                    continue
                technique = kb.technique(tag.upper())
                if technique is None:
                    problems.append(f"{path.name}: {tag} is not an ATT&CK technique")
                elif not tactics & set(technique.tactics):
                    problems.append(
                        f"{path.name}: {tag} is {technique.tactics}, tags say {tactics}"
                    )
    assert problems == []


def _reader_logsource(case: Case, fields: dict[str, Any]) -> LogSource:
    """The logsource Vedette's own readers give an event with these fields."""
    event = {k: v for k, v in fields.items() if not k.startswith("_")}
    if case.logsource.product == "windows":
        return normalize_windows(event)
    if "auditd" in case.logsource.services:
        # The auditd reader merges the records of one event; it is an "execve" kind when one of
        # them is EXECVE (the cases hold the one record a rule looks at).
        kind = "execve" if event.get("type") == "EXECVE" else "other"
        return source_table("auditd").classify(kind).apply(event)
    return classify_syslog(event)


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.stem)
def test_case_logsource_is_what_the_readers_produce(case: Case) -> None:
    # The cases state the event logsource; it must be the one the real normalisers assign to
    # the same fields, or a rule could pass its test and still never meet a real event.
    for run in case.match + case.miss:
        for fields in run:
            assert _reader_logsource(case, fields) == case.logsource, fields
