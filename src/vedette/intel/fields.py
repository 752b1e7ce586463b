"""Which event fields the indicator index reads, loaded from ``data/fields.yaml``.

The mapping is data so that a new log type needs a YAML line, not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vedette.errors import ConfigError

FIELD_KINDS = ("ip", "domain", "answers", "url", "hash", "email")


@dataclass(slots=True, frozen=True)
class FieldMap:
    """Event field name -> what it holds, and host/path pairs that form URLs."""

    kinds: dict[str, tuple[str, ...]]
    url_parts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_data(cls, data: Any, origin: str = "<data>") -> FieldMap:
        """Build from the parsed YAML mapping (kind -> list of field names)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{origin}: expected a mapping of kind -> field names")
        kinds: dict[str, list[str]] = {}
        for kind, names in data.items():
            if kind == "url_parts":
                continue
            if kind not in FIELD_KINDS:
                raise ConfigError(f"{origin}: unknown field kind {kind!r} (use {FIELD_KINDS})")
            for name in names or ():
                kinds.setdefault(str(name), []).append(kind)
        parts = tuple(
            (str(pair["host"]), str(pair["path"])) for pair in data.get("url_parts") or ()
        )
        return cls({k: tuple(v) for k, v in kinds.items()}, parts)

    @classmethod
    def load(cls, path: str | Path | None = None) -> FieldMap:
        """The bundled field map, or one from a YAML file."""
        if path is None:
            text = resources.files("vedette.intel").joinpath("data/fields.yaml").read_text("utf-8")
            origin = "vedette/intel/data/fields.yaml"
        else:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            origin = str(path)
        try:
            return cls.from_data(yaml.safe_load(text), origin)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: {exc}") from exc

    def fields_for(self, kind: str) -> list[str]:
        """Field names that hold ``kind``."""
        return [name for name, kinds in self.kinds.items() if kind in kinds]
