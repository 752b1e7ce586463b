"""--attack accepts a tactic by id, short name or name (QA R12)."""

from __future__ import annotations

import pytest
from scanfakes import make_event

from vedette.errors import ConfigError
from vedette.events import AttackRef, Detection
from vedette.scan.filters import DetectionFilter

DUMP = Detection(
    "d",
    "Dump",
    "high",
    make_event("a", 1),
    attack=(AttackRef("T1003.001", "LSASS Memory", ("credential-access",)),),
)


@pytest.mark.parametrize("term", ["TA0006", "ta0006", "credential-access", "Credential Access"])
def test_a_tactic_by_id_short_name_or_name(term: str) -> None:
    assert DetectionFilter.build(attack=[term]).accepts(DUMP)


def test_another_tactic_id_rejects() -> None:
    assert not DetectionFilter.build(attack=["TA0002"]).accepts(DUMP)


def test_an_unknown_tactic_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="TA9999"):
        DetectionFilter.build(attack=["TA9999"])
