"""Observables of an alert: the values another unit can look for in its own events.

Two sources, merged and de-duplicated by ``(type, value)``:

- the indicator values an intel detection saw (``detection.extra["observed"]``);
- the public IP addresses, domains, URLs and file hashes found in the event's fields.

What counts, field by field (so a file name like ``cmd.exe`` is never taken for a domain):

==========  ================================================================================
type        found in
==========  ================================================================================
``ip``      any field whose whole value is an IPv4/IPv6 address that is global: private,
            loopback, link-local, multicast, reserved and shared (CGNAT) addresses are left
            out unless ``include_private`` (``ipaddress``)
``url``     any ``http(s)://`` or ``ftp://`` URL inside any string value
``domain``  the host of such a URL, and fields named like a DNS name (``QueryName``,
            ``DestinationHostname``, ``domain``, ``query``, ...) whose value is a dotted name
            with an alphabetic top-level label outside internal suffixes (``.local``, ...)
``md5``,    Sysmon ``Hashes`` (``SHA1=..,MD5=..,SHA256=..``) and fields named like a hash
``sha1``,   (``md5``, ``sha256``, ``Hash``, ...) whose value is hex of the right length
``sha256``
==========  ================================================================================

Values are normalised (lower case for domains and hashes; IPs in canonical form); at most
:data:`MAX_OBSERVABLES` per alert.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

MAX_OBSERVABLES: Final = 50
"""Observables kept per alert: a noisy event must not make a retro-hunt of hundreds of values."""

HASH_TYPES: Final = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s\"'<>`|]{3,2048}", re.IGNORECASE)
_DOMAIN = re.compile(
    r"(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]"
)
_DOMAIN_FIELDS: Final = frozenset(
    {
        "queryname",
        "destinationhostname",
        "sourcehostname",
        "domain",
        "domainname",
        "dns_query",
        "dnsquery",
        "query",
        "server_name",
        "servername",
        "sni",
        "http_host",
        "url_domain",
        "remotehost",
        "fqdn",
    }
)
_HASH_FIELDS: Final = frozenset(
    {"hash", "hashes", "md5", "sha1", "sha256", "filehash", "file_hash", "imagehash"}
)
_INTERNAL_SUFFIXES: Final = (
    ".local",
    ".localdomain",
    ".lan",
    ".internal",
    ".intranet",
    ".corp",
    ".home",
    ".arpa",
    ".localhost",
    ".test",
    ".invalid",
    ".example",
)


_IP_SHAPE = re.compile(r"\s*\[?[0-9A-Fa-f.:]{2,45}(?:%[^\s\]]{1,64})?\]?\s*")
"""What an IP address can look like: most field values are not, and say so at this price."""


def public_ip(value: str, *, include_private: bool = False) -> str | None:
    """``value`` in canonical form when it is one IP address worth hunting, else None."""
    # ipaddress raises (slowly) on almost every value an event has; a regex says no first.
    if len(value) > 128 or ("." not in value and ":" not in value):
        return None
    if not _IP_SHAPE.fullmatch(value):
        return None
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if include_private:
        return str(address)
    # is_global alone lets multicast through (224.0.0.0/4 is "global" to ipaddress).
    if not address.is_global or address.is_multicast or address.is_reserved:
        return None
    return str(address)


def domain(value: str) -> str | None:
    """``value`` lower-cased when it is a public-looking DNS name, else None."""
    name = value.strip().rstrip(".").lower()
    if not _DOMAIN.fullmatch(name) or name.endswith(_INTERNAL_SUFFIXES) or "." not in name:
        return None
    if public_ip(name, include_private=True) is not None:
        return None
    return name


def file_hashes(value: str) -> Iterator[tuple[str, str]]:
    """``(type, hex)`` of each MD5/SHA-1/SHA-256 in a hash field (Sysmon ``Hashes`` too)."""
    for part in re.split(r"[,;\s]+", value):
        _, _, digest = part.rpartition("=")
        label = part.partition("=")[0].upper() if "=" in part else ""
        if label in ("IMPHASH",):
            continue  # an import hash names a build family, not a file
        if _HEX.fullmatch(digest) and len(digest) in HASH_TYPES:
            yield HASH_TYPES[len(digest)], digest.lower()


def _url_host(url: str) -> str | None:
    rest = url.split("://", 1)[1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def string_fields(fields: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted field name, text)`` of every string value, nested ones and lists included."""
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, Mapping):
            yield from string_fields(value, f"{name}.")
        elif isinstance(value, list):
            for item in value[:64]:
                if isinstance(item, str):
                    yield name, item


def field_observables(
    fields: Mapping[str, Any], *, include_private: bool = False
) -> list[dict[str, str]]:
    """Observables found in an event's fields (see the module table), in field order."""
    out: list[dict[str, str]] = []
    for name, raw in string_fields(fields):
        leaf = name.rsplit(".", 1)[-1].lower()
        value = raw[:8192]
        ip = public_ip(value, include_private=include_private)
        if ip is not None:
            out.append({"type": "ip", "field": name, "value": ip})
            continue
        if leaf in _HASH_FIELDS or leaf.endswith("hash") or leaf.endswith("hashes"):
            out.extend({"type": t, "field": name, "value": h} for t, h in file_hashes(value))
            continue
        for match in _URL.finditer(value) if "://" in value else ():
            url = match.group(0).rstrip(".,;)]}")
            host = _url_host(url)
            if host is None:
                continue
            host_ip = public_ip(host, include_private=include_private)
            host_domain = domain(host)
            if host_ip is None and host_domain is None:
                continue  # a URL on an internal host is nobody else's business
            out.append({"type": "url", "field": name, "value": url})
            if host_ip is not None:
                out.append({"type": "ip", "field": name, "value": host_ip})
            if host_domain is not None:
                out.append({"type": "domain", "field": name, "value": host_domain})
        if leaf in _DOMAIN_FIELDS:
            found = domain(value)
            if found is not None:
                out.append({"type": "domain", "field": name, "value": found})
    return out


def merge(*groups: list[dict[str, str]], limit: int = MAX_OBSERVABLES) -> list[dict[str, str]]:
    """The groups concatenated, the first of each ``(type, value)`` kept, at most ``limit``."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, str]] = []
    for group in groups:
        for item in group:
            key = (item["type"], item["value"])
            if key not in seen:
                seen.add(key)
                out.append(item)
                if len(out) >= limit:
                    return out
    return out


def intel_observables(extra: Mapping[str, Any]) -> list[dict[str, str]]:
    """The values an intel detection saw, typed by the indicator's type."""
    observed = extra.get("observed")
    if not isinstance(observed, Mapping):
        return []
    itype = str(extra.get("indicator_type", "indicator"))
    return [{"type": itype, "field": str(k), "value": str(v)} for k, v in observed.items()]
