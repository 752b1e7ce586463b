"""The centre's rule set: the detector built from rules and feeds exactly as ``vedette scan``
builds it, what loading said, and the per-unit correlators the workers make from it.

Shared by the embedded centre, its worker child and the scale-out roles, so none of them
imports another's module for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vedette.correlate import Correlator
from vedette.errors import ConfigError, RuleLoadError
from vedette.pipeline.build import DetectorConfig, LoadFacts, build_detector
from vedette.pipeline.detector import Detector
from vedette.rulepacks import default_rule_paths
from vedette.server.config import ServeConfig


@dataclass(slots=True)
class RuleSet:
    """The loaded detector and what loading it said (shown on the API)."""

    detector: Detector
    facts: LoadFacts
    loaded_at: datetime
    rule_paths: list[str]
    intel_paths: list[str]


def correlator_factory(detector: Detector) -> Callable[[], Correlator] | None:
    """A new per-unit correlator like the loaded one, or None without correlation rules."""
    if detector.correlator is None or detector.engine is None:
        return None
    engine = detector.engine

    def make() -> Correlator:
        # Network arrivals are a little out of order: hold them 30 s for the reorder buffer.
        return Correlator.from_engine(engine, out_of_order_tolerance=30.0)

    return make


def load_rules(config: ServeConfig) -> RuleSet:
    """Build the detector exactly as ``vedette scan`` does, with the centre's cache."""
    rule_paths = list(config.rule_paths) or default_rule_paths()
    intel_paths = [*config.intel_paths, *imported_feeds(config)]
    for path in [*rule_paths, *intel_paths]:
        if not Path(path).exists():
            raise ConfigError(f"{path} does not exist")
    detector, facts = build_detector(
        DetectorConfig(
            rule_paths=tuple(rule_paths),
            placeholders=config.placeholders,
            cache_dir=config.paths.cache,
            intel_feeds=tuple(intel_paths),
        )
    )
    return RuleSet(
        detector=detector,
        facts=facts,
        loaded_at=datetime.now(UTC),
        rule_paths=[str(p) for p in rule_paths],
        intel_paths=[str(p) for p in intel_paths],
    )


def feeds_folder(config: ServeConfig) -> Path:
    """Where feeds imported from the console are kept (the centre's home ``feeds/``)."""
    return config.home / "feeds"


def imported_feeds(config: ServeConfig) -> list[Path]:
    """The imported-feeds folder when it holds a file (loaded beside the ``--intel`` feeds)."""
    folder = feeds_folder(config)
    if folder.is_dir() and any(p.is_file() for p in folder.iterdir()):
        return [folder]
    return []


def rule_error_record(error: RuleLoadError) -> dict[str, object]:
    """A rule that did not load, as the API shows it."""
    return dict(error.to_dict())
