"""The shared stage of both faces: build and run the :class:`Detector`.

The Detector is the Sigma engine, the indicator index, the correlator and ATT&CK enrichment as
one stage over event batches. ``vedette scan`` (``vedette.scan``) and the monitoring centre
(``vedette.server``) both stand on it and never on each other::

    detector, facts = build_detector(DetectorConfig(rule_paths=(Path("rules"),)))
    detections = detector.enrich(detector.match(events))

``vedette.pipeline.build`` is imported on demand: it pulls in the engine and the intel package.
Nothing here assumes it owns the process (no GC freezing, no forking).
"""

from __future__ import annotations

from vedette.pipeline.detector import Detector, chunked

__all__ = ["Detector", "chunked"]
