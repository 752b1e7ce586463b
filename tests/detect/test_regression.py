"""SigmaHQ regression cases, end to end: real EVTX in, the full rule corpus, the named rule fires.

Every case of ``sigma/regression_data`` names one rule, a real ``.evtx`` and ``match_count`` (the
minimum number of detections of that rule on that file; absent means at least one). The file is
read by Vedette's own reader (sniffed, flattened, classified), every event is matched against the
whole corpus (``rules``, ``rules-threat-hunting``, ``rules-emerging-threats``,
``rules-compliance``) loaded once, and the case's rule must fire at least ``match_count`` times.

A case that cannot pass is listed in ``KNOWN_FAILURES`` with the reason; it is a strict xfail, so
it is noticed the day it starts to pass.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from datasets import dataset, datasets_root
from vedette.detect import Engine
from vedette.sources import ReadReport, read_events

CORPUS = ("rules", "rules-threat-hunting", "rules-emerging-threats", "rules-compliance")

# case folder name (all formats) or name + ".evtx"/".json" -> why it cannot pass
# (see docs/regression-findings.md)
KNOWN_FAILURES: dict[str, str] = {}


def _cases(suffix: str) -> list[Any]:
    root = datasets_root() / "sigma" / "regression_data"
    infos = sorted(root.rglob("info.yml")) if root.exists() else []
    params = []
    for info in infos:
        name = info.parent.name
        marks = []
        reason = KNOWN_FAILURES.get(f"{name}{suffix}") or KNOWN_FAILURES.get(name)
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(info, id=name, marks=marks))
    return params


def _load(tmp_path_factory: pytest.TempPathFactory, scanner: str) -> Engine:
    sigma = dataset("sigma")
    cache = tmp_path_factory.mktemp(f"engine-cache-{scanner}")
    paths = [sigma / folder for folder in CORPUS]
    loaded = Engine.from_paths(paths, cache_dir=cache, scanner=scanner)
    assert loaded.load_report.loaded > 3000
    return loaded


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The whole corpus as `vedette scan` loads it (fastest scanner available), once per worker."""
    return _load(tmp_path_factory, "auto")


@pytest.fixture(scope="module")
def reference_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The whole corpus with the pure-Python item scanner, the reference the accelerator mirrors."""
    return _load(tmp_path_factory, "python")


def _expectation(info: Path, suffix: str) -> tuple[str, int, Path]:
    """(rule id, minimum detections, events file with that suffix) of one case."""
    case = yaml.safe_load(info.read_text(encoding="utf-8"))
    rule_id = str(case["rule_metadata"][0]["id"]).lower()
    tests = case.get("regression_tests_info") or [{}]
    minimum = int(tests[0].get("match_count") or 1)
    (events_file,) = info.parent.glob(f"*{suffix}")
    return rule_id, minimum, events_file


def _check(info: Path, suffix: str, engine: Engine) -> None:
    rule_id, minimum, events_file = _expectation(info, suffix)
    report = ReadReport()
    fired: Counter[str] = Counter()
    events = 0
    for batch in read_events(events_file, report=report):  # format sniffed, as `vedette scan`
        events += len(batch)
        fired.update(d.rule_id.lower() for d in engine.match(batch))
    assert events > 0, f"{events_file.name}: no event read ({report})"
    assert not report.warnings, f"{events_file.name}: read warnings {report.warnings}"
    assert fired[rule_id] >= minimum, (
        f"rule {rule_id} fired {fired[rule_id]} times on {events} events of {events_file.name},"
        f" expected at least {minimum}; rules that fired: {dict(fired.most_common(10))}"
    )


@pytest.mark.parametrize("info", _cases(".evtx"))
def test_regression_case_evtx(info: Path, engine: Engine) -> None:
    """The case's real ``.evtx`` (the test SigmaHQ's own CI runs)."""
    _check(info, ".evtx", engine)


@pytest.mark.parametrize("info", _cases(".evtx"))
def test_regression_case_evtx_reference_scanner(info: Path, reference_engine: Engine) -> None:
    """The case's ``.evtx`` with the pure-Python item scanner."""
    _check(info, ".evtx", reference_engine)


@pytest.mark.parametrize("info", _cases(".json"))
def test_regression_case_json(info: Path, engine: Engine) -> None:
    """The same events as exported ``.json`` (evtx_dump layout), through the JSON reader."""
    _check(info, ".json", engine)


def test_regression_cases_are_collected() -> None:
    """Without the corpus the parametrised tests above collect nothing and pytest only skips
    them; this fails under ``CI`` instead (through `dataset`) or when no case is found."""
    dataset("sigma", "regression_data")
    assert len(_cases(".evtx")) >= 50
    assert len(_cases(".json")) >= 50
