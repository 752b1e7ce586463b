"""Loading: the load report, filters, correlation rules, placeholders, the cache, pickling."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from vedette.detect import Engine
from vedette.errors import ConfigError
from vedette.events import Event, LogSource

PROCESS = LogSource("windows", frozenset(), frozenset({"process_creation"}))

BAD_MODIFIER = """\
title: Bad modifier
id: 0d5b3a86-0000-4000-8000-000000000001
status: test
level: low
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|nosuchmodifier: 'x'
    condition: selection
"""

NOT_YAML = """\
title: Broken
detection:
    selection: [unclosed
"""

FILTER = """\
title: Filter admin accounts
id: 0d5b3a86-0000-4000-8000-0000000000f1
logsource:
    product: windows
    category: process_creation
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095
    selection:
        User|startswith: 'adm_'
    condition: not selection
"""

CORRELATION = """\
title: Many rar runs
id: 0d5b3a86-0000-4000-8000-0000000000c1
status: test
level: high
correlation:
    type: event_count
    rules:
        - good_rule
    group-by:
        - User
    timespan: 5m
    condition:
        gte: 3
"""


def load(paths: list[Path], **kwargs: Any) -> Engine:
    """Engine over ``paths`` with the Python scanner (these tests are about loading)."""
    return Engine.from_paths(paths, scanner="python", **kwargs)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rar(user: str = "bob") -> Event:
    return Event({"Image": r"C:\rar.exe", "User": user}, PROCESS)


def test_one_bad_rule_never_stops_the_rest(tmp_path: Path, rar_rule: str) -> None:
    write(tmp_path, "a/good.yml", rar_rule)
    bad = write(tmp_path, "a/bad.yml", BAD_MODIFIER)
    broken = write(tmp_path, "b/broken.yaml", NOT_YAML)
    write(tmp_path, "b/readme.txt", "not a rule")
    engine = load([tmp_path])
    report = engine.load_report
    assert report.loaded == 1
    assert report.files == 3
    errors = {Path(e.path).name: e for e in report.errors}
    assert len(report.errors) == 2
    assert set(errors) == {"bad.yml", "broken.yaml"}
    assert "nosuchmodifier" in errors["bad.yml"].reason
    assert errors["bad.yml"].line == 10  # the line of the offending key
    assert errors["bad.yml"].rule_id == "0d5b3a86-0000-4000-8000-000000000001"
    assert errors["bad.yml"].title == "Bad modifier"
    assert errors["broken.yaml"].reason.startswith("not YAML")
    assert errors["broken.yaml"].line is not None
    assert str(bad) in str(errors["bad.yml"])
    assert broken.name in str(errors["broken.yaml"])
    assert len(engine.match([rar()])) == 1


def test_missing_path_is_reported(tmp_path: Path) -> None:
    engine = load([tmp_path / "nothing.yml"])
    assert engine.load_report.loaded == 0
    assert engine.load_report.errors[0].reason == "no such file or folder"


def test_filter_applies_to_the_rules_it_names(tmp_path: Path, rar_rule: str) -> None:
    other = rar_rule.replace(
        "6f3e2987-db24-4c78-a860-b4f4095a7095", "1f3e2987-db24-4c78-a860-b4f4095a7095"
    )
    other = other.replace("good_rule", "other_rule")
    write(tmp_path, "good.yml", rar_rule)
    write(tmp_path, "other.yml", other)
    write(tmp_path, "filters/admins.yml", FILTER)
    engine = load([tmp_path])
    assert engine.load_report.errors == []
    assert engine.load_report.loaded == 2
    assert engine.load_report.filters == 1
    assert engine.load_report.filtered_rules == 1
    fired = {d.rule_name for d in engine.match([rar("adm_jane")])}
    assert fired == {"other_rule"}  # the filter silences only the rule it names
    fired = {d.rule_name for d in engine.match([rar("jane")])}
    assert fired == {"good_rule", "other_rule"}
    # the filter's own selections are not reported as matched selections
    assert all(d.matched == ("selection",) for d in engine.match([rar("jane")]))
    assert engine.load_report.notes == []


def test_filter_naming_an_unknown_rule_is_noted(tmp_path: Path) -> None:
    write(tmp_path, "filters/admins.yml", FILTER)
    engine = load([tmp_path])
    assert engine.load_report.errors == []
    (note,) = engine.load_report.notes
    assert "6f3e2987-db24-4c78-a860-b4f4095a7095" in note


def test_correlation_rules_are_kept_not_failed(tmp_path: Path, rar_rule: str) -> None:
    write(tmp_path, "good.yml", rar_rule)
    write(tmp_path, "corr.yml", CORRELATION)
    engine = load([tmp_path])
    assert engine.load_report.errors == []
    assert engine.load_report.loaded == 1
    assert engine.load_report.correlations == 1
    (correlation,) = engine.correlation_rules
    assert correlation.title == "Many rar runs"
    assert engine.rule_by_name("good_rule") is not None
    assert engine.rule_by_id("6f3e2987-db24-4c78-a860-b4f4095a7095") is not None


def test_correlation_with_unknown_rule_is_a_load_error(tmp_path: Path) -> None:
    write(tmp_path, "corr.yml", CORRELATION)
    engine = load([tmp_path])
    assert engine.correlation_rules == []
    (error,) = engine.load_report.errors
    assert "good_rule" in error.reason


def test_multi_document_files_and_several_texts(rar_rule: str) -> None:
    engine = Engine.from_yaml(rar_rule + "---\n" + BAD_MODIFIER, CORRELATION, scanner="python")
    assert engine.load_report.loaded == 1
    assert len(engine.load_report.errors) == 1
    assert len(engine.correlation_rules) == 1


def test_placeholder_file(tmp_path: Path, rar_rule: str) -> None:
    rule = rar_rule.replace("Image|endswith: '\\rar.exe'", "User|expand: '%Admins%'")
    write(tmp_path, "rules/expand.yml", rule)
    without = load([tmp_path / "rules"])
    assert without.load_report.loaded == 0
    assert "'%Admins%' has no value" in without.load_report.errors[0].reason
    values = write(tmp_path, "placeholders.yml", "Admins:\n  - 'adm_*'\n  - root\n")
    engine = load([tmp_path / "rules"], placeholders=values)
    assert engine.load_report.loaded == 1
    assert len(engine.match([rar("ADM_x"), rar("root"), rar("bob")])) == 2


def test_cache_reuses_the_compiled_plan(tmp_path: Path, rar_rule: str) -> None:
    write(tmp_path, "rules/good.yml", rar_rule)
    write(tmp_path, "rules/bad.yml", BAD_MODIFIER)
    cache_dir = tmp_path / "cache"
    first = load([tmp_path / "rules"], cache_dir=cache_dir)
    assert first.cache_key is not None
    assert len(list(cache_dir.glob("rules-*.pickle"))) == 1
    assert len(list(cache_dir.glob("engine-*.pickle"))) == 1  # trigger sets and condition code
    second = load([tmp_path / "rules"], cache_dir=cache_dir)
    assert second.cache_key == first.cache_key
    assert second.load_report.errors == first.load_report.errors
    assert len(second.match([rar()])) == 1
    # changing a rule file changes the key: the cache never serves a stale plan
    write(tmp_path, "rules/good.yml", rar_rule.replace("rar.exe", "7z.exe"))
    third = load([tmp_path / "rules"], cache_dir=cache_dir)
    assert third.cache_key != first.cache_key
    assert third.match([rar()]) == []


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, rar_rule: str) -> None:
    write(tmp_path, "rules/good.yml", rar_rule)
    cache_dir = tmp_path / "cache"
    first = load([tmp_path / "rules"], cache_dir=cache_dir)
    (entry,) = cache_dir.glob("rules-*.pickle")
    entry.write_bytes(b"garbage")
    again = load([tmp_path / "rules"], cache_dir=cache_dir)
    assert again.cache_key == first.cache_key
    assert len(again.match([rar()])) == 1


def test_engine_pickles_for_worker_processes(rar_rule: str) -> None:
    engine = Engine.from_yaml(rar_rule, CORRELATION, scanner="python")
    clone = pickle.loads(pickle.dumps(engine))
    assert [r.id for r in clone.rules] == [r.id for r in engine.rules]
    assert len(clone.correlation_rules) == 1
    assert len(clone.match([rar()])) == 1


def test_routing_by_logsource(rar_rule: str) -> None:
    engine = Engine.from_yaml(rar_rule, scanner="python")
    other = Event({"Image": r"C:\rar.exe"}, LogSource("windows", frozenset({"security"})))
    linux = Event({"Image": r"C:\rar.exe"}, LogSource("linux", frozenset(), PROCESS.categories))
    assert engine.match([other, linux]) == []
    assert len(engine.match([rar(), other, rar()])) == 2


def test_report_notes_name_the_interpretations_rules_rely_on(rar_rule: str) -> None:
    keyword = rar_rule.replace(
        "    selection:\n        Image|endswith: '\\rar.exe'\n", "    selection:\n        - 'rar'\n"
    )
    plain = Engine.from_yaml(rar_rule, scanner="python")
    assert plain.load_report.notes == []
    engine = Engine.from_yaml(keyword, scanner="python")
    assert engine.load_report.loaded == 1
    (note,) = engine.load_report.notes
    assert note.startswith("1 rule(s): keyword")


def test_duplicate_rule_ids_are_noted(rar_rule: str) -> None:
    twin = rar_rule.replace("title: Rar archive created", "title: Twin rule").replace(
        "good_rule", "twin_rule"
    )
    engine = Engine.from_yaml(rar_rule, twin, scanner="python")
    assert engine.load_report.loaded == 2
    (note,) = engine.load_report.notes
    assert "6f3e2987-db24-4c78-a860-b4f4095a7095" in note


def test_auto_scanner_falls_back_past_a_broken_accelerator(
    monkeypatch: pytest.MonkeyPatch, rar_rule: str
) -> None:
    import vedette.detect.engine as engine_module
    from vedette.detect.scanner import get_scanner_factory

    def broken_hyperscan(name: str) -> Any:
        if name == "hyperscan":
            raise ImportError("libhs.so.5: cannot open shared object file")
        return get_scanner_factory(name)

    monkeypatch.setattr(engine_module, "get_scanner_factory", broken_hyperscan)
    engine = Engine.from_yaml(rar_rule, scanner="auto")
    assert "libhs.so.5" in engine.scanner_warnings[0]
    assert len(engine.match([rar()])) == 1
    with pytest.raises(ConfigError, match="cannot be loaded"):
        Engine.from_yaml(rar_rule, scanner="hyperscan")
