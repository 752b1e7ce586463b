"""The whole SigmaHQ corpus loads: every rule that does not is listed with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets import dataset
from vedette.detect import Engine
from vedette.detect.plan import RulePlan

CORPUS_FOLDERS = (
    "rules",
    "rules-threat-hunting",
    "rules-emerging-threats",
    "rules-compliance",
    "rules-dfir",
    "rules-placeholder",
)
PLACEHOLDERS = Path(__file__).parent / "data" / "sigmahq-placeholders.yml"

# Reasons the specification itself gives for rejecting a rule; a rule failing for any other
# reason is a Vedette (or pySigma) shortcoming and fails the test. With the placeholder file
# above no rule should need one.
SPEC_REASONS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def corpus_engine() -> Engine:
    root = dataset("sigma")
    return Engine.from_paths(
        [root / folder for folder in CORPUS_FOLDERS], placeholders=PLACEHOLDERS, scanner="none"
    )


@pytest.mark.slow
def test_every_corpus_rule_loads(corpus_engine: Engine) -> None:
    report = corpus_engine.load_report
    unexplained = [e for e in report.errors if not e.reason.startswith(SPEC_REASONS or ("\0",))]
    listing = "\n".join(str(e) for e in unexplained)
    assert not unexplained, f"{len(unexplained)} corpus rules do not load:\n{listing}"
    assert report.files >= 3700
    assert report.loaded + report.correlations == report.files  # one rule per file in SigmaHQ


@pytest.mark.slow
def test_corpus_plan_is_sound(corpus_engine: Engine) -> None:
    plan: RulePlan = corpus_engine.plan
    assert [item.item_id for item in plan.items] == list(range(len(plan.items)))
    # interning pays: far fewer items than (rule, selection field) pairs
    uses = sum(len(rule.item_ids) for rule in plan.rules)
    assert len(plan.items) < uses
    ids = [rule.info.id for rule in plan.rules]
    assert len(set(ids)) == len(ids), "two corpus rules share an id"
    with_attack = sum(1 for rule in plan.rules if rule.info.attack_ids)
    assert with_attack > len(plan.rules) // 2


def test_placeholder_rules_without_values_are_rejected_with_the_spec_reason() -> None:
    engine = Engine.from_paths([dataset("sigma", "rules-placeholder")], scanner="none")
    report = engine.load_report
    assert report.loaded == 0
    assert report.errors, "rules-placeholder should need placeholder values"
    for error in report.errors:
        assert "has no value" in error.reason, str(error)
        assert error.line is not None
