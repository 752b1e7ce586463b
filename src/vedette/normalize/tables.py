"""Logsource classification and field aliases of non-Windows sources, from YAML data files.

Each ``data/<table>.yaml`` describes one source family::

    product: zeek
    service_is_kind: true      # the kind (here the Zeek log type) is also a service
    services: []               # services every event of the family has
    aliases: {}                # aliases every event of the family gets
    kinds:
      dns:
        categories: [dns]
        aliases: {record_type: qtype_name}   # alias field <- source field, added when absent

A reader names the *kind* of its event (Zeek log type, Suricata ``event_type``, syslog program,
Sysmon EventID) and gets back a :class:`SourceClass` that adds the aliases and returns the
:class:`~vedette.events.LogSource`. A new log type is a data change, not a code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vedette.events import LogSource


@dataclass(slots=True, frozen=True)
class SourceClass:
    """The logsource of one kind of event and the alias fields to add to it."""

    logsource: LogSource
    aliases: tuple[tuple[str, str], ...] = ()

    def apply(self, fields: dict[str, Any]) -> LogSource:
        """Add alias fields to ``fields`` in place and return the logsource."""
        for alias, source in self.aliases:
            if alias not in fields and source in fields:
                fields[alias] = fields[source]
        return self.logsource


@dataclass(slots=True)
class SourceTable:
    """One family's classification: a default class plus classes per kind."""

    product: str | None
    services: frozenset[str]
    categories: frozenset[str]
    service_is_kind: bool
    kinds: dict[str, SourceClass]
    aliases: tuple[tuple[str, str], ...] = ()
    """Aliases every event of the family gets."""
    defaults: dict[str, SourceClass] = field(default_factory=dict)
    """Classes of kinds not named in the data, built on first use."""

    def classify(self, kind: object = None) -> SourceClass:
        """The class of events of ``kind`` (case-insensitive); unknown kinds get the default."""
        key = str(kind).lower() if kind is not None else ""
        found = self.kinds.get(key)
        if found is not None:
            return found
        found = self.defaults.get(key)
        if found is None:
            services = self.services | {key} if (self.service_is_kind and key) else self.services
            found = SourceClass(LogSource(self.product, services, self.categories), self.aliases)
            if len(self.defaults) < 4096:  # bounded: kinds come from input data
                self.defaults[key] = found
        return found


def _strings(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(str(item) for item in value)


@cache
def source_table(name: str) -> SourceTable:
    """Load ``data/<name>.yaml`` once."""
    text = resources.files("vedette.normalize").joinpath(f"data/{name}.yaml").read_text("utf-8")
    data = yaml.safe_load(text) or {}
    product = data.get("product")
    services = _strings(data.get("services"))
    categories = _strings(data.get("categories"))
    service_is_kind = bool(data.get("service_is_kind", False))
    shared_aliases = {str(a): str(s) for a, s in (data.get("aliases") or {}).items()}
    kinds: dict[str, SourceClass] = {}
    for kind, spec in (data.get("kinds") or {}).items():
        spec = spec or {}
        key = str(kind).lower()
        kind_services = services | _strings(spec.get("services"))
        if service_is_kind:
            kind_services |= {key}
        logsource = LogSource(
            spec.get("product", product),
            kind_services,
            categories | _strings(spec.get("categories")),
        )
        kind_aliases = shared_aliases | {
            str(a): str(s) for a, s in (spec.get("aliases") or {}).items()
        }
        kinds[key] = SourceClass(logsource, tuple(kind_aliases.items()))
    return SourceTable(
        product, services, categories, service_is_kind, kinds, tuple(shared_aliases.items())
    )


def linux_sysmon_logsource(fields: dict[str, Any]) -> LogSource:
    """Sysmon for Linux: product linux, category by EventID (``data/linux_sysmon.yaml``)."""
    return source_table("linux_sysmon").classify(fields.get("EventID")).apply(fields)
