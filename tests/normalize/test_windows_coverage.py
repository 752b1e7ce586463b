"""The Windows mapping against SigmaHQ itself: the rule corpus and tests/thor.yml.

Run with ``-s`` to see the table of every (product, service, category) of the corpus' Windows
rules and whether the mapping produces it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from datasets import dataset
from vedette.normalize.windows import WindowsMapping, normalize_windows, windows_mapping

CORPUS = ("rules", "rules-threat-hunting", "rules-emerging-threats", "rules-compliance")
Logsource = tuple[str | None, str | None, str | None]


def _load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return list(yaml.load_all(handle, Loader=yaml.CSafeLoader))


@pytest.fixture(scope="module")
def corpus_logsources() -> Counter[Logsource]:
    root = dataset("sigma")
    found: Counter[Logsource] = Counter()
    for folder in CORPUS:
        for path in sorted((root / folder).rglob("*.yml")):
            for doc in _load_all(path):
                if not isinstance(doc, dict) or not isinstance(doc.get("logsource"), dict):
                    continue
                ls = doc["logsource"]
                if ls.get("product") == "windows" or ls.get("category") == "antivirus":
                    found[(ls.get("product"), ls.get("service"), ls.get("category"))] += 1
    return found


def _produced(mapping: WindowsMapping, ls: Logsource) -> bool:
    _, service, category = ls
    return (service is None or service in mapping.services()) and (
        category is None or category in mapping.categories()
    )


def _explained(mapping: WindowsMapping, ls: Logsource) -> bool:
    _, service, category = ls
    return any(name in mapping.not_produced for name in (service, category) if name)


def test_every_windows_logsource_of_the_corpus_is_produced_or_explained(
    corpus_logsources: Counter[Logsource],
) -> None:
    mapping = windows_mapping()
    assert len(corpus_logsources) > 60  # the corpus really was read
    rows = []
    missing = []
    for ls, count in sorted(corpus_logsources.items(), key=lambda item: str(item[0])):
        status = "produced" if _produced(mapping, ls) else "explained"
        if status == "explained" and not _explained(mapping, ls):
            status = "MISSING"
            missing.append(ls)
        rows.append(f"{status:9} {count:5}  {ls}")
    print("\n" + "\n".join(rows))
    assert not missing, f"corpus logsources neither produced nor explained: {missing}"


def test_explanations_are_not_stale() -> None:
    mapping = windows_mapping()
    stale = [n for n in mapping.not_produced if n in mapping.services() | mapping.categories()]
    assert not stale, f"not_produced lists logsources the mapping does produce: {stale}"


@pytest.fixture(scope="module")
def thor() -> dict[str, Any]:
    path = dataset("sigma", "tests", "thor.yml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    logsources = document["logsources"]
    assert isinstance(logsources, dict)
    return logsources


def _channels_of(mapping: WindowsMapping, service: str) -> list[str]:
    return [name for name, c in mapping.channels.items() if service in c.logsource.services]


def test_every_thor_channel_maps_to_its_service(thor: dict[str, Any]) -> None:
    wrong = []
    for name, entry in thor.items():
        if entry.get("product") != "windows":
            continue
        for source in entry.get("sources", []):
            channel = source.removeprefix("WinEventLog:")
            logsource = normalize_windows({"Channel": channel, "EventID": -1})
            if entry["service"] not in logsource.services:
                wrong.append((name, channel, entry["service"], sorted(logsource.services)))
    assert not wrong


def test_every_thor_event_id_mapping_is_reproduced(thor: dict[str, Any]) -> None:
    mapping = windows_mapping()
    wrong = []
    checked = 0
    for name, entry in thor.items():
        conditions = dict(entry.get("conditions") or {})
        if "EventID" not in conditions or "category" not in entry:
            continue
        service = entry["rewrite"]["service"]
        event_ids = conditions.pop("EventID")
        for event_id in event_ids if isinstance(event_ids, list) else [event_ids]:
            for channel in _channels_of(mapping, service):
                fields: dict[str, Any] = {"Channel": channel, "EventID": event_id, **conditions}
                for source in (entry.get("fieldmappings") or {}).values():
                    fields[source] = f"value of {source}"
                logsource = normalize_windows(fields, mapping)
                checked += 1
                if not logsource.admits("windows", service, entry["category"]):
                    wrong.append((name, channel, event_id, sorted(logsource.categories)))
                for alias, source in (entry.get("fieldmappings") or {}).items():
                    if fields.get(alias) != f"value of {source}":
                        wrong.append((name, channel, event_id, f"{alias} <- {source}"))
    assert checked > 40
    assert not wrong, wrong
