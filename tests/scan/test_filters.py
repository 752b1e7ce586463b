"""Output filters: level, status, tags, ATT&CK, time window, excluded rules, hosts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scanfakes import T0, make_event

from vedette.errors import ConfigError
from vedette.events import AttackRef, Detection
from vedette.scan.filters import DetectionFilter


def det(
    *,
    level: str = "medium",
    status: str = "stable",
    tags: tuple[str, ...] = (),
    attack: tuple[AttackRef, ...] = (),
    seconds: float = 0,
    host: str = "WS1.corp.local",
    rule_id: str = "r1",
) -> Detection:
    event = make_event("f.evtx", 1, seconds=seconds, host=host)
    return Detection(
        rule_id, "Rule", level, event, status=status, tags=tags, attack=attack, rule_name="rule_one"
    )


def test_empty_filter_accepts_everything() -> None:
    assert DetectionFilter.build().is_empty
    assert DetectionFilter.build().accepts(det())


def test_min_level() -> None:
    flt = DetectionFilter.build(min_level="high")
    assert not flt.accepts(det(level="medium"))
    assert flt.accepts(det(level="high"))
    assert flt.accepts(det(level="critical"))


def test_status_is_one_of() -> None:
    flt = DetectionFilter.build(statuses=["stable", "Test"])
    assert flt.accepts(det(status="test"))
    assert not flt.accepts(det(status="experimental"))


def test_tag_exact_or_dotted_prefix() -> None:
    flt = DetectionFilter.build(tags=["attack.t1059"])
    assert flt.accepts(det(tags=("attack.execution", "attack.t1059.001")))
    assert not flt.accepts(det(tags=("attack.t10590",)))
    assert not flt.accepts(det(tags=("attack.execution",)))


def test_attack_technique_includes_sub_techniques_but_not_lookalikes() -> None:
    flt = DetectionFilter.build(attack=["t1059"])
    assert flt.accepts(det(attack=(AttackRef("T1059.001"),)))
    assert flt.accepts(det(tags=("attack.t1059",)))
    assert not flt.accepts(det(attack=(AttackRef("T10590"),)))
    assert not flt.accepts(det(attack=(AttackRef("T1003.001"),)))
    sub = DetectionFilter.build(attack=["T1059.001"])
    assert not sub.accepts(det(attack=(AttackRef("T1059.003"),)))


def test_attack_tactic_from_enrichment_or_tags() -> None:
    flt = DetectionFilter.build(attack=["credential_access"])
    assert flt.accepts(
        det(attack=(AttackRef("T1003.001", "LSASS Memory", ("credential-access",)),))
    )
    assert flt.accepts(det(tags=("attack.credential_access",)))
    assert not flt.accepts(det(tags=("attack.execution",)))


def test_time_window_is_inclusive_and_needs_a_time() -> None:
    flt = DetectionFilter.build(
        time_from="2024-03-01T12:00:10Z", time_to="2024-03-01T12:00:20+00:00"
    )
    assert not flt.accepts(det(seconds=9))
    assert flt.accepts(det(seconds=10))
    assert flt.accepts(det(seconds=20))
    assert not flt.accepts(det(seconds=21))
    undated = det(seconds=15)
    undated.event.timestamp = None
    assert not flt.accepts(undated)


def test_time_without_offset_is_utc_and_a_date_is_midnight() -> None:
    flt = DetectionFilter.build(time_from="2024-03-01")
    assert flt.time_from == T0 - timedelta(hours=12)


def test_exclude_rule_by_id_or_name() -> None:
    assert not DetectionFilter.build(exclude_rules=["R1"]).accepts(det())
    assert not DetectionFilter.build(exclude_rules=["rule_one"]).accepts(det())
    assert DetectionFilter.build(exclude_rules=["r2"]).accepts(det())


def test_host_glob_matches_full_or_short_name_case_insensitively() -> None:
    assert DetectionFilter.build(hosts=["ws1"]).accepts(det())
    assert DetectionFilter.build(hosts=["WS*"]).accepts(det())
    assert DetectionFilter.build(hosts=["ws1.corp.local"]).accepts(det())
    assert not DetectionFilter.build(hosts=["dc1"]).accepts(det())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_level": "severe"},
        {"time_from": "yesterday"},
        {"time_from": "2024-03-02", "time_to": "2024-03-01"},
    ],
)
def test_bad_values_are_config_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        DetectionFilter.build(**kwargs)  # type: ignore[arg-type]
