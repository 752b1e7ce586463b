"""Build the scan's :class:`Detector` from rule paths, indicator feeds and the ATT&CK data.

The parent builds the whole detector once (which also fills the compiled-rule cache); a
worker process that cannot inherit it through ``fork`` rebuilds only the matching part with
:class:`WorkerFactory`, from the same paths and the now warm cache.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vedette.errors import ConfigError, RuleLoadError
from vedette.pipeline.detector import Detector


def default_cache_dir() -> Path:
    """Compiled-rule cache: ``$XDG_CACHE_HOME/vedette`` (``~/.cache/vedette`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vedette"


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


def _module(name: str) -> Any:
    return importlib.import_module(name)


def load_engine(config: DetectorConfig) -> Any:
    """The Sigma engine for the configured rule paths (``vedette.detect.Engine``)."""
    for path in config.rule_paths:
        if not path.exists():
            raise ConfigError(f"--rules: {path} does not exist")
    if config.placeholders is not None and not config.placeholders.is_file():
        raise ConfigError(f"--placeholders: {config.placeholders} is not a file")
    engine_class = _module("vedette.detect").Engine
    return engine_class.from_paths(
        list(config.rule_paths), placeholders=config.placeholders, cache_dir=config.cache_dir
    )


def load_indicators(config: DetectorConfig) -> Any:
    """The indicator index of the configured feeds, or None without feeds."""
    if not config.intel_feeds:
        return None
    for path in config.intel_feeds:
        if not path.exists():
            raise ConfigError(f"--intel: {path} does not exist")
    index_class = _module("vedette.intel").IndicatorIndex
    return index_class.from_feeds(list(config.intel_feeds))


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
        facts.indicators = _indicator_count(indicators)
    if facts.rules_loaded == 0 and indicators is None:
        first = "; ".join(str(e) for e in facts.rule_errors[:3])
        raise ConfigError(
            "no rule could be loaded"
            + (f" (e.g. {first}); see `vedette rules check PATH`" if first else "")
        )
    detector = Detector(engine=engine, indicators=indicators)
    if config.correlate:
        _attach_correlator(detector, engine, facts)
    _attach_attack(detector, config, facts)
    return detector, facts


def _indicator_count(index: Any) -> int:
    for name in ("count", "size", "indicator_count"):
        value = getattr(index, name, None)
        if isinstance(value, int):
            return value
    try:
        return len(index)
    except TypeError:
        return 0


def _attach_correlator(detector: Detector, engine: Any, facts: LoadFacts) -> None:
    if not list(getattr(engine, "correlation_rules", ()) or ()):
        return
    try:
        correlate = _module("vedette.correlate")
        correlator_class = correlate.Correlator
    except (ImportError, AttributeError):
        facts.notes.append("correlation rules loaded but the correlator is not available")
        return
    correlator = correlator_class.from_engine(engine)
    detector.correlator = correlator
    detector.suppressed_rule_ids = frozenset(getattr(correlator, "suppressed_rule_ids", ()) or ())
    facts.correlation_rules = len(list(getattr(correlator, "rules", engine.correlation_rules)))
    facts.rule_errors.extend(getattr(correlator, "load_errors", ()) or ())


def _attach_attack(detector: Detector, config: DetectorConfig, facts: LoadFacts) -> None:
    try:
        kb_class = _module("vedette.intel").AttackKB
    except (ImportError, AttributeError):
        facts.notes.append("ATT&CK names and tactics unavailable (no knowledge base)")
        return
    detector.attack_kb = kb_class.load(config.attack_data)
