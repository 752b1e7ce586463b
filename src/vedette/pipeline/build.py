"""Build the scan's :class:`Detector` from rule paths, indicator feeds and the ATT&CK data.

The parent builds the whole detector once (which also fills the compiled-rule cache); a
worker process that cannot inherit it through ``fork`` rebuilds only the matching part with
:class:`WorkerFactory`, from the same paths and the now warm cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vedette.correlate import Correlator
from vedette.detect import Engine
from vedette.errors import ConfigError, RuleLoadError
from vedette.intel import AttackKB, IndicatorIndex
from vedette.pipeline.detector import Detector


@dataclass(slots=True, frozen=True, kw_only=True)
class DetectorConfig:
    """Where rules, placeholders, indicators and the compiled-rule cache are."""

    rule_paths: tuple[Path, ...]
    placeholders: Path | None = None
    cache_dir: Path | None = None
    intel_feeds: tuple[Path, ...] = ()
    attack_data: Path | None = None
    correlate: bool = True


@dataclass(slots=True)
class LoadFacts:
    """What loaded: rules, rule errors, correlation rules, indicators, notes for the summary."""

    rules_loaded: int = 0
    rule_errors: list[RuleLoadError] = field(default_factory=list)
    correlation_rules: int = 0
    indicators: int = 0
    notes: list[str] = field(default_factory=list)


def require_rule_paths(paths: Sequence[Path], missing: str = "{path} does not exist") -> None:
    """Raise :class:`ConfigError` (``missing`` formatted) for the first path that does not exist."""
    # A mistyped path must not read as "0 rules, nothing wrong".
    for path in paths:
        if not path.exists():
            raise ConfigError(missing.format(path=path))


def load_rule_set(
    paths: Sequence[Path],
    *,
    placeholders: Path | None = None,
    cache_dir: Path | None = None,
    missing: str = "{path} does not exist",
) -> Engine:
    """Rules to list or count, not to match: no item scanner is built, and no rule file is an error.

    The commands that inspect a rule set (``rules list``, ``rules check``, ``attack coverage``)
    share this, and with it the compiled-rule cache of ``scan``.
    """
    require_rule_paths(paths, missing)
    engine = Engine.from_paths(
        list(paths), placeholders=placeholders, cache_dir=cache_dir, scanner="none"
    )
    if engine.load_report.files == 0:  # a wrong folder is not "0 rules" or "0% coverage"
        raise ConfigError("no rule files (.yml, .yaml) in " + ", ".join(map(str, paths)))
    return engine


def load_engine(config: DetectorConfig) -> Engine:
    """The Sigma engine for the configured rule paths (compiled-rule cache used and filled)."""
    require_rule_paths(config.rule_paths, "--rules: {path} does not exist")
    if config.placeholders is not None and not config.placeholders.is_file():
        raise ConfigError(f"--placeholders: {config.placeholders} is not a file")
    return Engine.from_paths(
        list(config.rule_paths), placeholders=config.placeholders, cache_dir=config.cache_dir
    )


def load_indicators(config: DetectorConfig) -> IndicatorIndex | None:
    """The indicator index of the configured feeds, or None without feeds."""
    if not config.intel_feeds:
        return None
    for path in config.intel_feeds:
        if not path.exists():
            raise ConfigError(f"--intel: {path} does not exist")
    # Cached beside the compiled rules: a million indicators rebuild in seconds, load in 0.2 s.
    return IndicatorIndex.from_feeds(list(config.intel_feeds), cache_dir=config.cache_dir)


@dataclass(slots=True, frozen=True)
class WorkerFactory:
    """Rebuilds the matching part of the detector in a worker process (picklable)."""

    config: DetectorConfig

    def __call__(self) -> Detector:
        return Detector(engine=load_engine(self.config), indicators=load_indicators(self.config))


def build_detector(config: DetectorConfig) -> tuple[Detector, LoadFacts]:
    """The full detector (engine, indicators, correlator, ATT&CK) and what loaded."""
    facts = LoadFacts()
    engine = load_engine(config)
    report = engine.load_report
    facts.rules_loaded = int(report.loaded)
    facts.rule_errors = list(report.errors)
    indicators = load_indicators(config)
    if indicators is not None:
        facts.indicators = len(indicators)
        facts.notes.extend(_feed_notes(indicators))
    if facts.rules_loaded == 0 and indicators is None:
        first = "; ".join(str(e) for e in facts.rule_errors[:3])
        raise ConfigError(
            "no rule could be loaded"
            + (f" (e.g. {first}); see `vedette rules check PATH`" if first else "")
        )
    detector = Detector(engine=engine, indicators=indicators)
    if config.correlate:
        _attach_correlator(detector, engine, facts)
    _attach_attack(detector, config)
    return detector, facts


def _feed_notes(index: IndicatorIndex) -> list[str]:
    notes = []
    for report in index.reports:
        if report.unsupported:
            first = report.unsupported[0]
            notes.append(
                f"intel feed {report.path}: {len(report.unsupported)} entries not usable"
                f" (e.g. {first.reason}: {first.detail})"
            )
    return notes


def _attach_correlator(detector: Detector, engine: Engine, facts: LoadFacts) -> None:
    if not engine.correlation_rules:
        return
    correlator = Correlator.from_engine(engine)
    detector.correlator = correlator
    detector.suppressed_rule_ids = frozenset(correlator.suppressed_rule_ids)
    facts.correlation_rules = len(correlator.rules)
    facts.rule_errors.extend(correlator.load_errors)


def _attach_attack(detector: Detector, config: DetectorConfig) -> None:
    detector.attack_kb = AttackKB.load(config.attack_data)
