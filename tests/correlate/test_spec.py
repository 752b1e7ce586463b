"""Loading correlation rules: from YAML mappings and pySigma objects; load errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sigma.collection import SigmaCollection

from vedette.correlate import Correlator, SpecError, load_yaml_rules, parse_timespan
from vedette.correlate.spec import spec_from_mapping, spec_from_sigma

BASE = """
title: Failed logon
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
"""


def correlation(body: str, extra: str = "") -> str:
    return BASE + f"---\ntitle: Under test\nname: under_test\n{extra}correlation:\n{body}"


def load_errors(text: str) -> list[str]:
    rules = load_yaml_rules(text)
    return [error.reason for error in Correlator(rules.correlations, rules.base_rules).load_errors]


@pytest.mark.parametrize(
    ("spec", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1w", 604800)]
)
def test_timespans(spec: str, seconds: int) -> None:
    assert parse_timespan(spec) == seconds


@pytest.mark.parametrize("spec", ["0m", "5", "m", "5x", "-1h", 5, None])
def test_bad_timespans(spec: object) -> None:
    with pytest.raises(SpecError):
        parse_timespan(spec)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n", "no condition"),
        (
            "  type: value_count\n  rules: [failed_logon]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "needs condition.field",
        ),
        (
            "  type: value_percentile\n  rules: [failed_logon]\n  timespan: 1m\n"
            "  condition: {field: x, gte: 2}\n",
            "needs condition.percentile",
        ),
        (
            "  type: event_count\n  rules: [failed_logon]\n  timespan: soon\n"
            "  condition: {gte: 2}\n",
            "timespan",
        ),
        ("  type: event_count\n  rules: [failed_logon]\n  condition: {gte: 2}\n", "no timespan"),
        (
            "  type: value_max\n  rules: [failed_logon]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "not supported",
        ),
        (
            "  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n"
            "  condition: {above: 2}\n",
            "unknown condition operator",
        ),
        (
            "  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n"
            "  condition: {gte: many}\n",
            "not a number",
        ),
        (
            "  type: event_count\n  rules: [no_such_rule]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "'no_such_rule', which is not loaded",
        ),
        (
            "  type: temporal_ordered\n  rules: [failed_logon]\n  timespan: 1m\n"
            "  condition: failed_logon\n",
            "no defined order",
        ),
        (
            "  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n  condition: {gte: 2}\n"
            "  generate: maybe\n",
            "generate",
        ),
    ],
)
def test_rules_that_cannot_be_honoured_are_load_errors(body: str, reason: str) -> None:
    [error] = load_errors(correlation(body))
    assert reason in error
    assert error.startswith("correlation cannot be honoured")


def test_one_bad_correlation_does_not_stop_the_others() -> None:
    good = "  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n  condition: {gte: 2}\n"
    text = correlation("  type: nonsense\n") + "---\n" + correlation(good).replace(BASE, "")
    rules = load_yaml_rules(text.replace("name: under_test", "name: other", 1))
    correlator = Correlator(rules.correlations, rules.base_rules)
    assert len(correlator.load_errors) == 1
    assert [spec.name for spec in correlator.rules] == ["under_test"]


def test_rules_by_id_and_by_name() -> None:
    body = (
        "  type: event_count\n  rules: [53BA33FD-3A50-4468-A5EF-C583635CFA92]\n"
        "  timespan: 1m\n  condition: {gte: 2}\n"
    )
    rules = load_yaml_rules(correlation(body))
    correlator = Correlator(rules.correlations, rules.base_rules)
    assert correlator.load_errors == []
    assert correlator.referenced_rule_ids == {"53ba33fd-3a50-4468-a5ef-c583635cfa92"}


def test_range_condition_from_yaml_mapping() -> None:
    document = {
        "title": "Range",
        "correlation": {
            "type": "event_count",
            "rules": ["failed_logon"],
            "timespan": "1h",
            "condition": {"gt": 100, "lte": 200},
        },
    }
    spec = spec_from_mapping(document)
    assert spec.threshold.to_dict() == {"gt": 100, "lte": 200}
    assert not spec.threshold.lower_only
    assert [spec.threshold.holds(v) for v in (100, 101, 200, 201)] == [False, True, True, False]


def test_spec_from_pysigma_matches_spec_from_mapping() -> None:
    text = correlation(
        "  type: value_percentile\n  rules: [failed_logon]\n  group-by: [Computer]\n"
        "  timespan: 15m\n  condition: {field: Bytes, percentile: 95, gte: 1000}\n"
        "  aliases:\n    host:\n      failed_logon: Computer\n",
        extra="level: high\ntags: [attack.t1110.003, attack.credential-access]\n",
    )
    collection = SigmaCollection.from_yaml(text)
    from_sigma = spec_from_sigma(collection.rules[-1])
    from_yaml = spec_from_mapping(load_yaml_rules(text).correlations[0])
    for name in (
        "type",
        "rules",
        "timespan_seconds",
        "group_by",
        "value_field",
        "percentile",
        "level",
        "tags",
        "generate",
        "aliases",
        "name",
        "title",
    ):
        assert getattr(from_sigma, name) == getattr(from_yaml, name), name
    assert from_sigma.threshold.to_dict() == {"gte": 1000}
    assert [a.technique_id for a in from_sigma.attack] == ["T1110.003"]


def test_correlator_from_pysigma_objects_and_a_fake_engine() -> None:
    text = correlation(
        "  type: event_count\n  rules: [failed_logon]\n  group-by: [User]\n"
        "  timespan: 1m\n  condition: {gte: 1}\n"
    )
    collection = SigmaCollection.from_yaml(text)

    engine = SimpleNamespace(correlation_rules=[collection.rules[-1]], rules=[collection.rules[0]])
    correlator = Correlator.from_engine(engine, max_groups=10)
    assert correlator.load_errors == []
    assert correlator.suppressed_rule_ids == {
        "53ba33fd-3a50-4468-a5ef-c583635cfa92",
        "failed_logon",
    }
    assert correlator.max_groups == 10
