"""The offline face: ``vedette scan`` from paths to ordered, filtered, enriched detections.

Public API::

    detector, facts = build_detector(DetectorConfig(rule_paths=(Path("rules"),)))
    result = execute_scan(ScanRequest(paths=(Path("triage"),), jobs=4), detector,
                          SourcesInput(), sinks=[print])
    result.stats.to_dict()

Here live what only the offline face needs: file inputs, worker processes, spill files and
time ordering, output filters and scan statistics. ``vedette.scan.sources_input`` is imported
on demand: it pulls in every reader.
"""

from __future__ import annotations

from vedette.scan.execute import ScanRequest, ScanResult, execute_scan
from vedette.scan.filters import DetectionFilter
from vedette.scan.inputs import InputSource, ReadJob, ReadSummary
from vedette.scan.ordering import ExternalSorter, detection_sort_key
from vedette.scan.stats import ScanStats

__all__ = [
    "DetectionFilter",
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
