"""Nested JSON to flat, dotted Sigma field names (``userIdentity.type``, ``dns.rrname``).

Sigma rules over JSON sources (CloudTrail, Suricata, Zeek, ECS) name nested values with dots.
Lists of scalars stay lists (a rule value matches any element); a list of objects becomes, per
key, the list of that key's values (``dns.answers.rdata``), so nothing in it is lost to a rule.
"""

from __future__ import annotations

from typing import Any

_SCALARS = (str, int, float, bool)


def is_flat(value: dict[str, Any]) -> bool:
    """True when no value is an object and every list holds scalars only (checked in C loops)."""
    types = set(map(type, value.values()))
    if dict in types:
        return False
    if list not in types:
        return True
    for item in value.values():
        if type(item) is list:
            inner = set(map(type, item))
            if dict in inner or list in inner:
                return False
    return True


def flatten_owned(value: dict[str, Any]) -> dict[str, Any]:
    """Flat fields of a JSON object the caller owns: ``value`` itself when it is already flat
    (most Zeek and many ECS records), else a flat copy."""
    return value if is_flat(value) else flatten_json(value)


def flatten_json(
    value: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Flat dotted copy of a JSON object."""
    flat: dict[str, Any] = {} if out is None else out
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            if item:
                flatten_json(item, name + ".", flat)
            else:
                flat[name] = None
        elif isinstance(item, list):
            _flatten_list(name, item, flat)
        else:
            flat[name] = item
    return flat


def _flatten_list(name: str, items: list[Any], flat: dict[str, Any]) -> None:
    scalars: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            for key, sub in flatten_json(item).items():
                target = f"{name}.{key}"
                existing = flat.get(target)
                if isinstance(existing, list):
                    if isinstance(sub, list):
                        existing.extend(sub)
                    else:
                        existing.append(sub)
                else:
                    flat[target] = list(sub) if isinstance(sub, list) else [sub]
        elif isinstance(item, list):
            scalars.extend(x for x in item if x is None or isinstance(x, _SCALARS))
        else:
            scalars.append(item)
    if scalars or not items:
        flat[name] = scalars
