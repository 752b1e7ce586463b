"""Windows event classification and field aliases, driven by ``data/windows.yaml``.

A flattened Windows event (EventData beside ``EventID``, ``Channel``, ``Provider_Name``...) is
classified into the Sigma logsource the SigmaHQ rules expect: the channel gives the service
(``Security`` -> ``security``), the channel and EventID give the categories (Sysmon 1 ->
``process_creation``), and alias fields are added so that rules written with Sysmon names meet the
built-in equivalents (Security 4688 ``NewProcessName`` -> ``Image``). The mapping is data; this
module only compiles it into dictionaries so that classifying an event is a few lookups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vedette.events import LogSource

PRODUCT = "windows"
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_EMPTY_VALUES = frozenset(("", "-"))
_UNKNOWN_CHANNEL = LogSource(product=PRODUCT)


@dataclass(slots=True, frozen=True)
class Alias:
    """One alias field: the first usable source (field or ``{Field}`` template) gives its value."""

    name: str
    sources: tuple[str, ...]

    def value(self, fields: Mapping[str, Any]) -> Any:
        """Value of the alias for ``fields``, or None when no source is usable."""
        for source in self.sources:
            if "{" in source:
                names = _PLACEHOLDER.findall(source)
                values = [fields.get(n) for n in names]
                if all(v is not None and str(v) not in _EMPTY_VALUES for v in values):
                    return source.format_map(dict(zip(names, map(str, values), strict=True)))
                continue
            value = fields.get(source)
            if value is not None and not (isinstance(value, str) and value in _EMPTY_VALUES):
                return value
        return None


@dataclass(slots=True, frozen=True)
class ConditionalCategory:
    """A category that applies only when ``field`` equals one of ``values`` (case-insensitive)."""

    category: str
    field: str
    values: frozenset[str]

    def applies(self, fields: Mapping[str, Any]) -> bool:
        """True when the event's field holds one of the values."""
        value = fields.get(self.field)
        return value is not None and str(value).lower() in self.values


@dataclass(slots=True)
class EventClass:
    """Classification of one (channel, EventID): fixed logsource, conditional parts, aliases."""

    logsource: LogSource
    conditional: tuple[ConditionalCategory, ...] = ()
    aliases: tuple[Alias, ...] = ()
    _variants: dict[frozenset[str], LogSource] = field(default_factory=dict)

    def classify(self, fields: Mapping[str, Any]) -> LogSource:
        """The logsource of an event of this class (conditional categories resolved)."""
        if not self.conditional:
            return self.logsource
        extra = frozenset(c.category for c in self.conditional if c.applies(fields))
        if not extra:
            return self.logsource
        cached = self._variants.get(extra)
        if cached is None:
            base = self.logsource
            cached = LogSource(base.product, base.services, base.categories | extra)
            self._variants[extra] = cached
        return cached


@dataclass(slots=True)
class ChannelClass:
    """Classification of a channel: its services and its known EventIDs."""

    logsource: LogSource
    events: dict[int, EventClass]
    compact_field_names: bool = False


_AliasStep = tuple[str, tuple[str, ...] | None, Alias]
"""An alias as a plan runs it: name, its plain source fields (None: it has a template), alias."""


def _steps(aliases: tuple[Alias, ...]) -> tuple[_AliasStep, ...]:
    return tuple(
        (a.name, None if any("{" in s for s in a.sources) else a.sources, a) for a in aliases
    )


@dataclass(slots=True, frozen=True)
class Plan:
    """Everything :func:`normalize_windows` does to an event of one (channel, EventID), worked
    out once: the aliases to try in order (``before`` the compact names, if the channel wants
    them, then ``after``) and the logsource, or the event class whose conditional categories
    decide it."""

    before: tuple[_AliasStep, ...]
    compact: bool
    after: tuple[_AliasStep, ...]
    logsource: LogSource
    conditional: EventClass | None = None

    def run(self, fields: dict[str, Any]) -> LogSource:
        """Add the alias fields to ``fields`` in place; the event's logsource."""
        _run_steps(self.before, fields)
        if self.compact:
            _add_compact_names(fields)
            _run_steps(self.after, fields)
        if self.conditional is not None:
            return self.conditional.classify(fields)
        return self.logsource


PLAN_CACHE_LIMIT = 4096
"""Plans kept per mapping: (channel, EventID) pairs come from input data, so it is bounded."""


@dataclass(slots=True)
class WindowsMapping:
    """The compiled mapping: channels (lower-cased) and provider fallbacks."""

    channels: dict[str, ChannelClass]
    providers: dict[str, str]
    not_produced: dict[str, str]
    common_aliases: tuple[Alias, ...] = ()
    plans: dict[tuple[str, int], Plan] = field(default_factory=dict)
    """Plans by the exact (Channel, EventID) values of events, filled as events come."""

    def cached_plan(self, channel: str, event_id: int) -> Plan:
        """The plan of events whose Channel is exactly ``channel``, kept for the next ones."""
        plan = self.plans.get((channel, event_id))
        if plan is None:
            plan = self.plan(channel.lower(), event_id)
            if len(self.plans) < PLAN_CACHE_LIMIT:
                self.plans[(channel, event_id)] = plan
        return plan

    def plan(self, channel: str, event_id: int) -> Plan:
        """The plan of events of the lower-cased ``channel`` and ``event_id``."""
        common = _steps(self.common_aliases)
        found = self.channels.get(channel)
        if found is None:
            return Plan(common, False, (), _UNKNOWN_CHANNEL)
        event = found.events.get(event_id)
        aliases = _steps(event.aliases) if event is not None else ()
        logsource = event.logsource if event is not None else found.logsource
        conditional = event if event is not None and event.conditional else None
        if found.compact_field_names:
            return Plan(common, True, aliases, logsource, conditional)
        return Plan(common + aliases, False, (), logsource, conditional)

    def channel_for(self, fields: Mapping[str, Any]) -> str:
        """Lower-cased channel of an event, falling back on its provider."""
        channel = fields.get("Channel")
        if channel:
            return str(channel).lower()
        provider = fields.get("Provider_Name")
        return self.providers.get(str(provider).lower(), "") if provider else ""

    def services(self) -> frozenset[str]:
        """Every Sigma service some channel produces."""
        return frozenset(s for c in self.channels.values() for s in c.logsource.services)

    def categories(self) -> frozenset[str]:
        """Every Sigma category some (channel, EventID) can produce."""
        found: set[str] = set()
        for channel in self.channels.values():
            for event in channel.events.values():
                found |= event.logsource.categories
                found |= {c.category for c in event.conditional}
        return frozenset(found)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _event_class(
    services: frozenset[str], entries: list[Any], aliases: tuple[Alias, ...]
) -> EventClass:
    fixed: set[str] = set()
    conditional: list[ConditionalCategory] = []
    for entry in entries:
        if isinstance(entry, str):
            fixed.add(entry)
            continue
        ((name, wanted),) = dict(entry["when"]).items()
        values = frozenset(str(v).lower() for v in _as_list(wanted))
        conditional.append(ConditionalCategory(str(entry["category"]), str(name), values))
    logsource = LogSource(PRODUCT, services, frozenset(fixed))
    return EventClass(logsource, tuple(conditional), aliases)


def compile_mapping(data: Mapping[str, Any]) -> WindowsMapping:
    """Compile the YAML document of ``windows.yaml`` into lookup tables."""
    services = {
        str(name).lower(): frozenset(str(s) for s in _as_list(svc))
        for name, svc in (data.get("channels") or {}).items()
    }
    categories = {
        str(name).lower(): {int(eid): _as_list(cats) for eid, cats in by_id.items()}
        for name, by_id in (data.get("categories") or {}).items()
    }
    aliases: dict[tuple[str, int], tuple[Alias, ...]] = {}
    for entry in data.get("aliases") or []:
        pairs = tuple(
            Alias(str(alias), tuple(str(s) for s in _as_list(src)))
            for alias, src in entry["fields"].items()
        )
        for event_id in entry["event_ids"]:
            key = (str(entry["channel"]).lower(), int(event_id))
            aliases[key] = aliases.get(key, ()) + pairs
    compact = {str(c).lower() for c in data.get("compact_field_names") or []}

    channels: dict[str, ChannelClass] = {}
    for name in services.keys() | categories.keys() | {c for c, _ in aliases}:
        svc = services.get(name, frozenset())
        event_ids = categories.get(name, {}).keys() | {e for c, e in aliases if c == name}
        events = {
            eid: _event_class(
                svc, categories.get(name, {}).get(eid, []), aliases.get((name, eid), ())
            )
            for eid in event_ids
        }
        channels[name] = ChannelClass(LogSource(PRODUCT, svc), events, name in compact)
    providers = {str(p).lower(): str(c).lower() for p, c in (data.get("providers") or {}).items()}
    not_produced = {str(k): str(v) for k, v in (data.get("not_produced") or {}).items()}
    common = tuple(
        Alias(str(alias), tuple(str(s) for s in _as_list(src)))
        for alias, src in (data.get("common_aliases") or {}).items()
    )
    return WindowsMapping(channels, providers, not_produced, common)


@cache
def windows_mapping() -> WindowsMapping:
    """The packaged Windows mapping, loaded once per process."""
    text = resources.files("vedette.normalize").joinpath("data/windows.yaml").read_text("utf-8")
    return compile_mapping(yaml.safe_load(text))


def _event_id(value: Any) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return -1


def _add_compact_names(fields: dict[str, Any]) -> None:
    spaced = [name for name in fields if " " in name]
    for name in spaced:
        fields.setdefault(name.replace(" ", ""), fields[name])


def normalize_windows(fields: dict[str, Any], mapping: WindowsMapping | None = None) -> LogSource:
    """Classify a flattened Windows event and add its alias fields in place.

    ``fields`` must already be flat (EventData beside ``EventID``, ``Channel``, ...). An event
    of an unknown channel still gets product ``windows`` so that product-only rules meet it.
    """
    if mapping is None:
        mapping = windows_mapping()
    channel = fields.get("Channel")
    event_id = fields.get("EventID")
    # The rule (a text Channel, an int EventID) runs the cached plan of its pair: aliases only
    # add absent fields, so none can change the Channel or EventID the plan was chosen by.
    if type(channel) is not str or not channel or type(event_id) is not int:
        return normalize_windows_reference(fields, mapping)
    plan = mapping.plans.get((channel, event_id))
    if plan is None:
        plan = mapping.cached_plan(channel, event_id)
    return plan.run(fields)


def _run_steps(steps: tuple[_AliasStep, ...], fields: dict[str, Any]) -> None:
    for name, plain, alias in steps:
        if name in fields:
            continue
        if plain is None:
            value = alias.value(fields)
            if value is not None:
                fields[name] = value
            continue
        for source in plain:  # Alias.value for plain sources, without its per-source checks
            value = fields.get(source)
            if value is not None and not (isinstance(value, str) and value in _EMPTY_VALUES):
                fields[name] = value
                break


def normalize_windows_reference(
    fields: dict[str, Any], mapping: WindowsMapping | None = None
) -> LogSource:
    """:func:`normalize_windows` step by step, without plans: the definition the plans must
    reproduce, and the path of events without a text Channel and an int EventID."""
    mapping = mapping or windows_mapping()
    for alias in mapping.common_aliases:
        if alias.name not in fields:
            value = alias.value(fields)
            if value is not None:
                fields[alias.name] = value
    channel = mapping.channels.get(mapping.channel_for(fields))
    if channel is None:
        return _UNKNOWN_CHANNEL
    if channel.compact_field_names:
        _add_compact_names(fields)
    event = channel.events.get(_event_id(fields.get("EventID")))
    if event is None:
        return channel.logsource
    for alias in event.aliases:
        if alias.name not in fields:
            value = alias.value(fields)
            if value is not None:
                fields[alias.name] = value
    return event.classify(fields)
