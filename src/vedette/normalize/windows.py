"""Windows event classification and field aliases, driven by ``data/windows.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vedette.events import LogSource


@dataclass(slots=True, frozen=True)
class WindowsMapping:
    """Channel to service, (channel, EventID) to categories, and field aliases."""

    channels: dict[str, str]
    categories: dict[tuple[str, int], frozenset[str]]
    aliases: dict[tuple[str, int], tuple[tuple[str, str], ...]]


@cache
def windows_mapping() -> WindowsMapping:
    """Load the packaged Windows mapping once."""
    text = resources.files("vedette.normalize").joinpath("data/windows.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    channels = {str(k).lower(): str(v) for k, v in data.get("channels", {}).items()}
    categories: dict[tuple[str, int], frozenset[str]] = {}
    for channel, by_id in data.get("categories", {}).items():
        for event_id, cats in by_id.items():
            categories[(str(channel).lower(), int(event_id))] = frozenset(cats)
    aliases: dict[tuple[str, int], tuple[tuple[str, str], ...]] = {}
    for entry in data.get("aliases", []):
        pairs = tuple((str(a), str(s)) for a, s in entry["fields"].items())
        for event_id in entry["event_ids"]:
            key = (str(entry["channel"]).lower(), int(event_id))
            aliases[key] = aliases.get(key, ()) + pairs
    return WindowsMapping(channels, categories, aliases)


def normalize_windows(fields: dict[str, Any]) -> LogSource:
    """Classify a flattened Windows event and add alias fields in place.

    ``fields`` must already be flat (EventData beside ``EventID``, ``Channel``, ...).
    """
    mapping = windows_mapping()
    channel = str(fields.get("Channel") or "").lower()
    try:
        event_id = int(fields.get("EventID") or -1)
    except (TypeError, ValueError):
        event_id = -1
    service = mapping.channels.get(channel)
    key = (channel, event_id)
    for alias, source in mapping.aliases.get(key, ()):
        if alias not in fields and source in fields:
            fields[alias] = fields[source]
    return LogSource(
        product="windows",
        services=frozenset((service,)) if service else frozenset(),
        categories=mapping.categories.get(key, frozenset()),
    )
