"""Sigma correlation rules: windowed, bounded state keyed by group-by values.

``Correlator.from_engine(engine)`` (or ``Correlator(correlation_rules, base_rules)``) turns
base detections into correlation detections; see ``docs/correlation.md`` for the semantics
and the integration contract.
"""

from __future__ import annotations

from vedette.correlate.condition import Bound, Threshold
from vedette.correlate.correlator import CorrelationWarning, Correlator
from vedette.correlate.ranges import RangeSplit, split_range_correlations
from vedette.correlate.references import BaseRule
from vedette.correlate.spec import (
    TYPES,
    CorrelationSpec,
    SpecError,
    parse_timespan,
    spec_from_mapping,
    spec_from_sigma,
)
from vedette.correlate.yaml_rules import load_yaml_rules

__all__ = [
    "TYPES",
    "BaseRule",
    "Bound",
    "CorrelationSpec",
    "CorrelationWarning",
    "Correlator",
    "RangeSplit",
    "SpecError",
    "Threshold",
    "load_yaml_rules",
    "parse_timespan",
    "spec_from_mapping",
    "spec_from_sigma",
    "split_range_correlations",
]
