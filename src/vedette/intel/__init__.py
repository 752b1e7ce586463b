"""Threat intelligence and ATT&CK: indicator feeds, the indicator index, the ATT&CK knowledge base.

Public API::

    index = IndicatorIndex.from_feeds(["feeds/cert.json", "feeds/list.yaml"])
    detections = index.match(events)          # kind "intel", shaped like Sigma detections
    kb = AttackKB.load()                      # bundled Enterprise ATT&CK table
    kb.enrich(detections)                     # technique names and tactics
    layer = navigator_layer({"T1059.001": 3}) # ATT&CK Navigator layer (dict, JSON-ready)
"""

from __future__ import annotations

from vedette.intel.attack import AttackKB, Group, Software, Tactic, Technique
from vedette.intel.feeds import FeedSpec, load_feed
from vedette.intel.fields import FieldMap
from vedette.intel.index import IndicatorIndex
from vedette.intel.model import FeedReport, Indicator, IndicatorInfo

__all__ = [
    "AttackKB",
    "FeedReport",
    "FeedSpec",
    "FieldMap",
    "Group",
    "Indicator",
    "IndicatorIndex",
    "IndicatorInfo",
    "Software",
    "Tactic",
    "Technique",
    "load_feed",
]
