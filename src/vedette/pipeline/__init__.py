"""The scan pipeline: read, match, correlate, enrich, filter, order.

Public API::

    detector, facts = build_detector(DetectorConfig(rule_paths=(Path("rules"),)))
    result = execute_scan(ScanRequest(paths=(Path("triage"),), jobs=4), detector,
                          SourcesInput(), sinks=[print])
    result.stats.to_dict()

``vedette.pipeline.build`` and ``vedette.pipeline.sources_input`` are imported on demand: they
pull in the engine, the readers and the intel package.
"""

from __future__ import annotations

from vedette.pipeline.detector import Detector
from vedette.pipeline.filters import DetectionFilter
from vedette.pipeline.inputs import InputSource, ReadJob, ReadSummary
from vedette.pipeline.ordering import ExternalSorter, detection_sort_key
from vedette.pipeline.scan import ScanRequest, ScanResult, execute_scan
from vedette.pipeline.stats import ScanStats

__all__ = [
    "DetectionFilter",
    "Detector",
    "ExternalSorter",
    "InputSource",
    "ReadJob",
    "ReadSummary",
    "ScanRequest",
    "ScanResult",
    "ScanStats",
    "detection_sort_key",
    "execute_scan",
]
