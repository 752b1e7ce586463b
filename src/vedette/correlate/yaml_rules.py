"""Reading Sigma YAML documents for the correlator without the engine (tests, tools).

Correlation documents come back as mappings, so that every condition form the specification
allows (ranges included) reaches :func:`~vedette.correlate.spec.spec_from_mapping`; detection
documents come back as :class:`BaseRule` references (id and name) that correlations resolve to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from vedette.correlate.references import BaseRule


@dataclass(slots=True)
class YamlRules:
    """Correlation documents and base-rule references read from YAML text."""

    correlations: list[dict[str, Any]] = field(default_factory=list)
    base_rules: list[BaseRule] = field(default_factory=list)


def load_yaml_rules(*texts: str, path: str = "<memory>") -> YamlRules:
    """Split multi-document YAML into correlation documents and base-rule references."""
    found = YamlRules()
    for text in texts:
        for document in yaml.safe_load_all(text):
            if not isinstance(document, Mapping):
                continue
            if "correlation" in document:
                found.correlations.append({**document, "__path__": path})
            elif "detection" in document:
                rule_id = document.get("id")
                name = document.get("name")
                if rule_id is None and name is None:
                    continue
                found.base_rules.append(
                    BaseRule(
                        str(rule_id) if rule_id is not None else str(name),
                        str(name) if name is not None else None,
                    )
                )
    return found
