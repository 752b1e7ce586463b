"""Indicators: their types, canonical values and the context every indicator carries.

An indicator is one *observable* (``ip 203.0.113.7``, ``domain evil.example``,
``sha256 ab12...``) plus an :class:`IndicatorInfo`: where it came from, how confident the
source is, when it is valid, its labels, tags and ATT&CK techniques. Many indicators of one
feed or one MISP event share one ``IndicatorInfo`` object, which is what lets a million
indicators fit in little memory.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from vedette.errors import ReadWarning
from vedette.events import AttackRef

HASH_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
"""Hash algorithms Vedette matches, with their hex length."""

INDICATOR_TYPES: tuple[str, ...] = ("ip", "domain", "url", "email", *HASH_LENGTHS, "imphash")
"""Canonical indicator types."""

TYPE_LABELS: dict[str, str] = {
    "ip": "IP address",
    "domain": "domain",
    "url": "URL",
    "email": "email address",
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha512": "SHA-512",
    "imphash": "import hash",
}

TYPE_ALIASES: dict[str, str] = {
    "ip": "ip", "ipv4": "ip", "ipv6": "ip", "ip-addr": "ip", "ipv4-addr": "ip",
    "ipv6-addr": "ip", "cidr": "ip", "ip-src": "ip", "ip-dst": "ip", "address": "ip",
    "domain": "domain", "domain-name": "domain", "hostname": "domain", "fqdn": "domain",
    "host": "domain",
    "url": "url", "uri": "url", "link": "url",
    "email": "email", "email-addr": "email", "email-src": "email", "email-dst": "email",
    "md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "sha512": "sha512", "sha-512": "sha512", "imphash": "imphash",
}  # fmt: skip
"""Type names accepted from feeds and the command line (case-insensitive)."""

_HEX = re.compile(r"^[0-9a-f]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}$")
_DEFANG_HINT = re.compile(r"[\[({]|^[hf]x", re.IGNORECASE)
_DEFANG = (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("[:]", ":"), ("[@]", "@"))


def canonical_type(name: str) -> str:
    """Canonical indicator type for a feed's type name; ValueError when unsupported."""
    key = name.strip().lower()
    if key in TYPE_ALIASES:
        return TYPE_ALIASES[key]
    raise ValueError(f"unsupported indicator type {name!r}")


def refang(text: str) -> str:
    """Undo the usual defanging of shared indicators (``evil[.]example``, ``hxxp://``)."""
    out = text.strip()
    if not _DEFANG_HINT.search(out):
        return out
    for old, new in _DEFANG:
        out = out.replace(old, new)
    lowered = out[:5].lower()
    if lowered.startswith("hxxp"):
        out = "http" + out[4:]
    elif lowered.startswith("fxp"):
        out = "ftp" + out[3:]
    return out


def normalize_ip(text: str) -> str:
    """Canonical text of an address or CIDR network (IPv4-mapped IPv6 becomes IPv4)."""
    raw = refang(text)
    if raw.count(".") == 3 and raw[-1:].isdigit() and "/" not in raw and not raw.startswith("0"):
        try:  # fast path for the commonest indicator: a plain dotted IPv4 address
            canonical = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, raw))
        except OSError:
            canonical = ""
        if canonical == raw:
            return raw
    if "/" in raw:
        network = ipaddress.ip_network(raw, strict=False)
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                return str(ipaddress.IPv4Network((int(mapped), network.prefixlen - 96)))
        if network.num_addresses == 1:
            return str(network.network_address)
        return str(network)
    address = ipaddress.ip_address(raw.strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def normalize_domain(text: str) -> str:
    """Lower-case, IDNA-encoded domain without trailing dot or leading ``*.``."""
    value = refang(text).lower().rstrip(".")
    value = value.removeprefix("*.")
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a domain name: {text!r}") from exc
    labels = value.split(".")
    if not value or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"not a domain name: {text!r}")
    if labels[-1].isdigit():
        raise ValueError(f"not a domain name (an address?): {text!r}")
    return value


def url_key(text: str) -> str:
    """Canonical form of a URL: ``host[:port]/path[?query]``, scheme-less.

    The scheme is dropped on purpose: a known-bad URL is bad over http and https alike, and
    many logs (proxy, Suricata, Zeek) record host and path without one. Host is lower-cased,
    default ports, fragments and user info are removed; path and query keep their case.
    """
    raw = refang(text)
    if "://" not in raw[:12]:
        raw = "http://" + raw
    parts = urlsplit(raw)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"not a URL: {text!r}")
    port = parts.port
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port not in (80, 443):
        netloc += f":{port}"
    path = parts.path or "/"
    key = netloc + path
    if parts.query:
        key += "?" + parts.query
    return key.removesuffix("/") if path == "/" and not parts.query else key


def normalize_hash(algorithm: str, text: str) -> str:
    """Lower-case hex digest; ValueError when the length does not fit the algorithm."""
    value = text.strip().lower()
    if len(value) != HASH_LENGTHS[algorithm] or not _HEX.match(value):
        raise ValueError(f"not a {algorithm} digest: {text!r}")
    return value


def normalize_email(text: str) -> str:
    """Lower-case address; ValueError when it does not look like one."""
    value = refang(text).lower().strip("<>")
    local, sep, domain = value.rpartition("@")
    if not sep or not local or " " in value:
        raise ValueError(f"not an email address: {text!r}")
    return f"{local}@{normalize_domain(domain)}"


def normalize(kind: str, text: str) -> str:
    """Canonical value of an indicator of type ``kind``; ValueError when invalid."""
    if kind == "ip":
        return normalize_ip(text)
    if kind == "domain":
        return normalize_domain(text)
    if kind == "url":
        return url_key(text)
    if kind == "email":
        return normalize_email(text)
    if kind in HASH_LENGTHS:
        return normalize_hash(kind, text)
    if kind == "imphash":  # the MD5 of a PE file's import table (Sysmon's IMPHASH=)
        return normalize_hash("md5", text)
    raise ValueError(f"unsupported indicator type {kind!r}")


@dataclass(slots=True, frozen=True)
class IndicatorInfo:
    """Context of one or many indicators: source, confidence, validity, labels, ATT&CK.

    ``id`` is the indicator's own identifier when the feed has one (STIX indicator id, MISP
    attribute uuid); otherwise a stable id is derived from type, value and source.
    ``reference`` names the container for humans (``MISP event 1234``). ``level`` is an
    explicit Sigma level from the feed; otherwise the level follows ``confidence``.
    ``requires`` lists further (type, value) observables that must appear in the same event
    (a STIX ``AND``).
    """

    source: str
    id: str | None = None
    reference: str | None = None
    description: str | None = None
    confidence: int | None = None
    level: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    labels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    attack: tuple[AttackRef, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()

    def valid_at(self, when: datetime | None) -> bool:
        """True when the indicator is in force at ``when`` (unknown times count as valid)."""
        if when is None:
            return True
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_until is None or when < self.valid_until


@dataclass(slots=True, frozen=True)
class Indicator:
    """One observable of a known-bad kind, with its context."""

    type: str
    value: str
    info: IndicatorInfo

    @property
    def id(self) -> str:
        """The feed's id, or a stable one derived from type, value and source."""
        return self.info.id or derived_id(self.type, self.value, self.info.source)


def derived_id(kind: str, value: str, source: str) -> str:
    """Stable id for an indicator that has none of its own."""
    digest = hashlib.sha1(f"{kind}\x00{value}\x00{source}".encode()).hexdigest()[:16]
    return f"intel--{digest}"


@dataclass(slots=True)
class FeedReport:
    """What loading one feed did: counts, skips and everything that was not understood."""

    path: str
    format: str
    source: str = ""
    objects: int = 0
    indicators: int = 0
    observables: int = 0
    skipped_not_for_ids: int = 0
    skipped_other_types: int = 0
    removed: int = 0
    withdrawn: list[str] = field(default_factory=list)
    unsupported: list[ReadWarning] = field(default_factory=list)
    notes: list[ReadWarning] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)

    def warn(self, reason: str, detail: str, *, line: int | None = None) -> None:
        """Record something that could not be used, with the reason."""
        self.unsupported.append(
            ReadWarning(path=self.path, reason=reason, detail=detail, line=line)
        )

    def note(self, reason: str, detail: str, *, line: int | None = None) -> None:
        """Record a caution about something that was loaded (too broad, relaxed, ...)."""
        self.notes.append(ReadWarning(path=self.path, reason=reason, detail=detail, line=line))

    def withdraw(self, indicator_id: str) -> None:
        """Record an indicator the feed revokes or deletes (removed from the index on load)."""
        self.withdrawn.append(indicator_id)

    def count(self, kind: str) -> None:
        """Count one indexed observable of ``kind``."""
        self.observables += 1
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
