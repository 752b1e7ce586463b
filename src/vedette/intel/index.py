"""The indicator index: known-bad observables matched against events at scan speed.

Layout, chosen for a million indicators in little memory and a few dictionary probes per event:

* exact addresses: ``int -> entry`` dicts, one for IPv4 and one for IPv6;
* networks (CIDR): per prefix length, ``network >> host_bits -> entry``; an address is probed
  once per prefix length present in the feeds (IPv4-mapped IPv6 is treated as IPv4);
* domains: ``name -> entry``; an observed name is probed, then each parent domain in turn
  (``a.b.evil.example``, ``b.evil.example``, ``evil.example``, ``example``), so a listed domain
  covers its subdomains and nothing else (``notevil.example`` does not match ``evil.example``);
* URLs: canonical scheme-less ``host/path?query`` (see :func:`~vedette.intel.model.url_key`);
* hashes: raw digest bytes (the length tells the algorithm);
* e-mail addresses: lower-case text.

An entry is one :class:`~vedette.intel.model.IndicatorInfo`, or a list of them when several
sources list the same observable. Re-importing a feed replaces the entry with the same source
and id instead of adding another.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vedette.errors import FeedError
from vedette.events import Detection, Event
from vedette.intel.feeds import FeedSpec, expand_feed_paths, iter_feed
from vedette.intel.fields import FieldMap
from vedette.intel.model import (
    HASH_LENGTHS,
    FeedReport,
    Indicator,
    IndicatorInfo,
    derived_id,
    url_key,
)
from vedette.intel.report import DetectionTemplate

Entry = IndicatorInfo | list[IndicatorInfo]
Hit = tuple[str, Any, Entry, str, Any]
"""(indicator type, index key, entry, event field, observed value)."""
Probe = Callable[[Any, str, list[Hit]], None]
Plan = dict[str, tuple[tuple[str, ...], tuple[Probe, ...]]]
"""Watched field -> (what it holds, the probes that look it up)."""

_HASH_ALGOS = {"MD5", "SHA1", "SHA-1", "SHA256", "SHA-256", "SHA512", "SHA-512"}
_ALGORITHM_BY_DIGEST_SIZE = {length // 2: algo for algo, length in HASH_LENGTHS.items()}
"""Hash algorithm of a raw digest, by its size in bytes (the sizes are distinct)."""
_MISSING = object()
_IP_CACHE_LIMIT = 200_000
_TEMPLATE_CACHE_LIMIT = 50_000
_MEMO_LIMIT = 100_000


def _same(a: IndicatorInfo, b: IndicatorInfo) -> bool:
    return a.source == b.source and a.id == b.id and a.requires == b.requires


def _infos(entry: Entry) -> list[IndicatorInfo]:
    return entry if isinstance(entry, list) else [entry]


class IndicatorIndex:
    """Known-bad indicators from feeds, matched against events.

    ``IndicatorIndex.from_feeds(paths)`` loads feeds; ``index.match(events)`` returns one
    :class:`~vedette.events.Detection` (kind ``"intel"``) per indicator and event.
    """

    def __init__(self, *, fields: FieldMap | None = None) -> None:
        self.fields = fields or FieldMap.load()
        self.reports: list[FeedReport] = []
        self._ip4: dict[int, Entry] = {}
        self._ip6: dict[int, Entry] = {}
        self._nets4: dict[int, dict[int, Entry]] = {}
        self._nets6: dict[int, dict[int, Entry]] = {}
        self._domains: dict[str, Entry] = {}
        self._urls: dict[str, Entry] = {}
        self._hashes: dict[bytes, Entry] = {}
        self._imphashes: dict[bytes, Entry] = {}
        self._emails: dict[str, Entry] = {}
        self._count = 0
        self._plan: Plan | None = None
        self._memo: dict[tuple[tuple[str, ...], str], tuple[tuple[str, Any, Entry, Any], ...]] = {}
        self._url_parts: tuple[tuple[str, str], ...] = ()
        self._watched: frozenset[str] = frozenset()
        self._net4_probe: list[tuple[int, dict[int, Entry]]] = []
        self._net6_probe: list[tuple[int, dict[int, Entry]]] = []
        self._ip_cache: dict[str, tuple[int, int] | None] = {}
        self._templates: dict[tuple[Any, ...], DetectionTemplate] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The compiled plan holds bound methods and the address cache is only a cache:
        # neither is worth shipping to a worker process.
        state = dict(self.__dict__)
        state["_plan"] = None
        state["_ip_cache"] = {}
        state["_templates"] = {}
        state["_memo"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_feeds(
        cls,
        paths: Iterable[str | Path | FeedSpec],
        *,
        fields: FieldMap | None = None,
        cache_dir: Path | None = None,
    ) -> IndicatorIndex:
        """An index of every indicator in ``paths`` (files, folders, YAML feed lists).

        With ``cache_dir``, the built index is kept there keyed by the feeds' contents and
        settings, and the next call with unchanged feeds loads it instead of rebuilding.
        """
        from vedette.intel import cache

        specs = expand_feed_paths(list(paths))
        field_map = fields or FieldMap.load()
        key = cache.fingerprint(specs, field_map) if cache_dir is not None else ""
        if cache_dir is not None:
            cached = cache.load(cache_dir, key)
            if cached is not None:
                return cached
        index = cls(fields=field_map)
        for spec in specs:
            index.load_feed(spec)
        if cache_dir is not None:
            cache.store(cache_dir, key, index)
        return index

    def load_feed(self, feed: str | Path | FeedSpec) -> FeedReport:
        """Add (or update) the indicators of one feed; return its load report."""
        spec = feed if isinstance(feed, FeedSpec) else FeedSpec(Path(feed))
        spec.validate()
        report = FeedReport(
            path=str(spec.path), format=spec.format or "", source=spec.source_name()
        )
        try:
            for indicator in iter_feed(spec, report):
                self.add(indicator)
        except FeedError as exc:
            if not spec.in_folder:
                raise
            # One bad file in a feed folder must not cost the others (what loaded stays).
            report.warn("feed-unreadable", str(exc))
        if report.withdrawn:
            report.removed = self.remove(set(report.withdrawn), source=report.source)
        self.reports.append(report)
        return report

    def remove(self, ids: set[str], *, source: str | None = None) -> int:
        """Remove indicators by their own id (of ``source`` only, when given); return how many.

        Feeds withdraw indicators this way: a revoked STIX indicator, a deleted MISP attribute.
        """
        removed = 0
        tables: list[dict[Any, Entry]] = [
            self._ip4, self._ip6, self._domains, self._urls, self._hashes, self._emails,
            self._imphashes,
            *self._nets4.values(), *self._nets6.values(),
        ]  # fmt: skip
        for table in tables:
            for key in list(table):
                infos = _infos(table[key])
                kept = [
                    i for i in infos
                    if i.id not in ids or (source is not None and i.source != source)
                ]  # fmt: skip
                if len(kept) == len(infos):
                    continue
                removed += len(infos) - len(kept)
                if not kept:
                    del table[key]
                else:
                    table[key] = kept if len(kept) > 1 else kept[0]
        self._count -= removed
        self._plan = None
        return removed

    def add(self, indicator: Indicator) -> bool:
        """Index one indicator; True when new, False when it updated an existing one."""
        table, key = self._slot(indicator.type, indicator.value)
        self._plan = None
        info = indicator.info
        current = table.get(key)
        if current is None:
            table[key] = info
        elif isinstance(current, list):
            for i, existing in enumerate(current):
                if _same(existing, info):
                    current[i] = info
                    return False
            current.append(info)
        elif _same(current, info):
            table[key] = info
            return False
        else:
            table[key] = [current, info]
        self._count += 1
        return True

    def _slot(self, kind: str, value: str) -> tuple[dict[Any, Entry], Any]:
        if kind == "ip":
            if "/" in value:
                net = ipaddress.ip_network(value)
                bits = net.max_prefixlen - net.prefixlen
                nets = self._nets4 if net.version == 4 else self._nets6
                return nets.setdefault(net.prefixlen, {}), int(net.network_address) >> bits
            if ":" not in value:
                packed = socket.inet_pton(socket.AF_INET, value)
                return self._ip4, int.from_bytes(packed, "big")
            address = ipaddress.ip_address(value)
            return (self._ip4 if address.version == 4 else self._ip6), int(address)
        if kind == "domain":
            return self._domains, value
        if kind == "url":
            return self._urls, value if "://" not in value else url_key(value)
        if kind == "email":
            return self._emails, value
        if kind in HASH_LENGTHS:
            return self._hashes, bytes.fromhex(value)
        if kind == "imphash":
            return self._imphashes, bytes.fromhex(value)
        raise FeedError(f"unsupported indicator type {kind!r}")

    # -- inspection ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def counts(self) -> dict[str, int]:
        """Number of indexed indicators by type (``ip``, ``cidr``, ``domain``, ...)."""

        def total(table: dict[Any, Entry]) -> int:
            return sum(len(_infos(e)) for e in table.values())

        out = {
            "ip": total(self._ip4) + total(self._ip6),
            "cidr": sum(total(t) for t in (*self._nets4.values(), *self._nets6.values())),
            "domain": total(self._domains),
            "url": total(self._urls),
            "email": total(self._emails),
        }
        for digest, entry in self._hashes.items():
            algo = _ALGORITHM_BY_DIGEST_SIZE[len(digest)]
            out[algo] = out.get(algo, 0) + len(_infos(entry))
        if self._imphashes:
            out["imphash"] = total(self._imphashes)
        return {k: v for k, v in out.items() if v}

    def indicators(self) -> Iterator[Indicator]:
        """Every indexed indicator (rebuilt from the index; order unspecified)."""
        tables: list[tuple[str, dict[Any, Entry]]] = [
            ("ip", self._ip4), ("ip", self._ip6), ("domain", self._domains),
            ("url", self._urls), ("email", self._emails), ("hash", self._hashes),
            ("imphash", self._imphashes),
        ]  # fmt: skip
        tables += [("net4", t) for t in self._nets4.values()]
        tables += [("net6", t) for t in self._nets6.values()]
        for label, table in tables:
            for key, entry in table.items():
                kind, value = _describe(label, key, table, self)
                for info in _infos(entry):
                    yield Indicator(kind, value, info)

    # -- matching --------------------------------------------------------------------------

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """Detections (kind ``"intel"``) for every indicator that any event contains."""
        if self._count == 0:
            return []
        plan = self._plan if self._plan is not None else self._compile()
        watched = self._watched
        url_parts = self._url_parts
        memo = self._memo
        out: list[Detection] = []
        for event in events:
            fields = event.fields
            hits: list[Hit] = []
            # A set intersection in C finds the few watched fields of an event faster than a
            # Python loop over all its fields.
            for name in watched.intersection(fields):
                value = fields[name]
                if value is None:
                    continue
                kinds, probes = plan[name]
                if type(value) is not str:
                    for probe in probes:
                        probe(value, name, hits)
                    continue
                # Logs repeat the same addresses, names and hashes over and over: remember
                # what each (kind of field, value) found, hits and misses alike.
                memo_key = (kinds, value)
                found = memo.get(memo_key)
                if found is None:
                    scratch: list[Hit] = []
                    for probe in probes:
                        probe(value, name, scratch)
                    found = tuple((h[0], h[1], h[2], h[4]) for h in scratch)
                    if len(memo) >= _MEMO_LIMIT:
                        memo.clear()
                    memo[memo_key] = found
                for kind, key, entry, observed in found:
                    hits.append((kind, key, entry, name, observed))
            for host_field, path_field in url_parts:
                host = fields.get(host_field)
                path = fields.get(path_field)
                if host and path:
                    self._probe_url(f"{host}{path}", f"{host_field}+{path_field}", hits)
            if hits:
                out.extend(self._detections(event, hits))
        return out

    def match_event(self, event: Event) -> list[Detection]:
        """Detections for one event."""
        return self.match([event])

    def _compile(self) -> Plan:
        """Field -> probes, only for the kinds of indicator actually loaded."""
        has_ip = bool(self._ip4 or self._ip6 or self._nets4 or self._nets6)
        active: dict[str, Callable[[Any, str, list[Hit]], None] | None] = {
            "ip": self._probe_ip if has_ip else None,
            "domain": self._probe_domain if (self._domains or has_ip) else None,
            "answers": self._probe_answers if (self._domains or has_ip) else None,
            "url": self._probe_url if (self._urls or self._domains or has_ip) else None,
            "hash": self._probe_hash if (self._hashes or self._imphashes) else None,
            "email": self._probe_email if self._emails else None,
        }
        plan: Plan = {}
        for name, kinds in self.fields.kinds.items():
            probes = tuple(p for p in (active[k] for k in kinds) if p is not None)
            if probes:
                plan[name] = (kinds, probes)
        self._url_parts = self.fields.url_parts if active["url"] else ()
        self._watched = frozenset(plan)
        self._net4_probe = [(32 - p, t) for p, t in sorted(self._nets4.items())]
        self._net6_probe = [(128 - p, t) for p, t in sorted(self._nets6.items())]
        self._memo.clear()
        self._plan = plan
        return plan

    def _parse_ip(self, text: str) -> tuple[int, int] | None:
        cached = self._ip_cache.get(text, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        parsed: tuple[int, int] | None
        try:
            if ":" in text:
                number = int.from_bytes(
                    socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0].strip("[]")), "big"
                )
                parsed = (4, number & 0xFFFFFFFF) if number >> 32 == 0xFFFF else (6, number)
            else:
                parsed = (4, int.from_bytes(socket.inet_pton(socket.AF_INET, text.strip()), "big"))
        except (OSError, ValueError):
            parsed = None
        if len(self._ip_cache) >= _IP_CACHE_LIMIT:
            self._ip_cache.clear()
        self._ip_cache[text] = parsed
        return parsed

    def _probe_ip(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_ip(item, field, hits)
            return
        parsed = self._parse_ip(value if isinstance(value, str) else str(value))
        if parsed is None:
            return
        version, number = parsed
        if version == 4:
            exact, probes = self._ip4, self._net4_probe
        else:
            exact, probes = self._ip6, self._net6_probe
        entry = exact.get(number)
        if entry is not None:
            hits.append(("ip", (version, number), entry, field, value))
        for shift, table in probes:
            entry = table.get(number >> shift)
            if entry is not None:
                hits.append(("cidr", (version, shift, number >> shift), entry, field, value))

    def _probe_domain(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_domain(item, field, hits)
            return
        if not isinstance(value, str) or not value:
            return
        name = value.strip().lower().rstrip(".")
        if name.count(":") == 1:  # host:port
            name = name.split(":", 1)[0]
        if name and (name[-1].isdigit() or ":" in name) and self._parse_ip(name) is not None:
            if self._ip4 or self._ip6 or self._net4_probe or self._net6_probe:
                self._probe_ip(name, field, hits)
            return
        domains = self._domains
        if not domains:
            return
        while True:
            entry = domains.get(name)
            if entry is not None:
                hits.append(("domain", name, entry, field, value))
            dot = name.find(".")
            if dot < 0:
                return
            name = name[dot + 1 :]

    def _probe_answers(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_answers(item, field, hits)
            return
        if not isinstance(value, str):
            return
        for answer in value.split(";"):
            answer = answer.strip()
            if answer.startswith("type:"):  # Sysmon: "type:  5 cname.example"
                answer = answer.rsplit(None, 1)[-1]
            if answer:
                self._probe_domain(answer, field, hits)

    def _probe_url(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_url(item, field, hits)
            return
        if not isinstance(value, str) or not value or value == "-":
            return
        try:
            key = url_key(value)
        except ValueError:
            return
        if self._urls:
            entry = self._urls.get(key)
            if entry is not None:
                hits.append(("url", key, entry, field, value))
            elif "?" in key:
                bare = key.split("?", 1)[0]
                entry = self._urls.get(bare)
                if entry is not None:
                    hits.append(("url", bare, entry, field, value))
        host = key.split("/", 1)[0]
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        elif ":" in host:
            host = host.split(":", 1)[0]
        self._probe_domain(host, field, hits)

    def _probe_hash(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_hash(item, field, hits)
            return
        if not isinstance(value, str):
            return
        table = self._hashes
        for part in value.split(","):
            algo, sep, digest = part.partition("=")
            if sep:
                name = algo.strip().upper()
                if name == "IMPHASH":  # an import hash is not a file hash: its own table
                    self._probe_imphash(digest.strip(), field, hits)
                    continue
                if name not in _HASH_ALGOS:
                    continue
            else:
                digest = algo
            digest = digest.strip()
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                continue
            if len(raw) in _ALGORITHM_BY_DIGEST_SIZE:
                entry = table.get(raw)
                if entry is not None:
                    hits.append(("hash", raw, entry, field, digest))

    def _probe_imphash(self, digest: str, field: str, hits: list[Hit]) -> None:
        if not self._imphashes:
            return
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            return
        entry = self._imphashes.get(raw)
        if entry is not None:
            hits.append(("imphash", raw, entry, field, digest))

    def _probe_email(self, value: Any, field: str, hits: list[Hit]) -> None:
        if isinstance(value, list):
            for item in value:
                self._probe_email(item, field, hits)
            return
        if not isinstance(value, str) or "@" not in value:
            return
        for part in value.replace(";", ",").split(","):
            address = part.strip().strip("<>").lower()
            if "<" in address:  # "Name <a@b>"
                address = address.rsplit("<", 1)[1]
            entry = self._emails.get(address)
            if entry is not None:
                hits.append(("email", address, entry, field, part.strip()))

    # -- detections ------------------------------------------------------------------------

    def _detections(self, event: Event, hits: list[Hit]) -> list[Detection]:
        when = event.timestamp
        if len(hits) > 1:  # report fields in the event's own order, whatever the set order
            position = {name: i for i, name in enumerate(event.fields)}
            hits.sort(key=lambda hit: position.get(hit[3], len(position)))
        grouped: dict[tuple[Any, ...], tuple[DetectionTemplate, list[tuple[str, Any]]]] = {}
        templates = self._templates
        for kind, key, entry, field, observed in hits:
            for info in _infos(entry):
                if not info.valid_at(when):
                    continue
                group = (id(info),) if info.id else (id(info), kind, key)
                found = grouped.get(group)
                if found is not None:
                    if (field, observed) not in found[1]:
                        found[1].append((field, observed))
                    continue
                template = templates.get((id(info), kind, key))
                if template is None or template.info is not info:
                    itype, shown = _display(kind, key)
                    rule_id = info.id or derived_id(itype, shown, info.source)
                    template = DetectionTemplate.of(info, itype, shown, rule_id)
                    if len(templates) >= _TEMPLATE_CACHE_LIMIT:
                        templates.clear()
                    templates[(id(info), kind, key)] = template
                grouped[group] = (template, [(field, observed)])
        out: list[Detection] = []
        for template, observed in grouped.values():
            requires = template.info.requires
            if requires and not all(self._event_has(event, t, v) for t, v in requires):
                continue
            out.append(template.detection(event, observed))
        return out

    def _event_has(self, event: Event, kind: str, value: str) -> bool:
        """Whether the event also shows observable ``value`` (for STIX ``AND`` patterns)."""
        probe = IndicatorIndex(fields=self.fields)
        probe.add(Indicator(kind, value, IndicatorInfo(source="requires")))
        return bool(probe._raw_hits(event))

    def _raw_hits(self, event: Event) -> list[Hit]:
        plan = self._plan if self._plan is not None else self._compile()
        hits: list[Hit] = []
        for name, value in event.fields.items():
            if name in plan and value is not None:
                for probe in plan[name][1]:
                    probe(value, name, hits)
        return hits


def _display(kind: str, key: Any) -> tuple[str, str]:
    """(indicator type, value as text) of an index key."""
    if kind == "ip":
        version, number = key
        address = ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number)
        return "ip", str(address)
    if kind == "cidr":
        version, shift, prefix = key
        if version == 4:
            return "ip", str(ipaddress.IPv4Network((prefix << shift, 32 - shift)))
        return "ip", str(ipaddress.IPv6Network((prefix << shift, 128 - shift)))
    if kind == "hash":
        algo = _ALGORITHM_BY_DIGEST_SIZE[len(key)]
        return algo, key.hex()
    if kind == "imphash":
        return "imphash", key.hex()
    return kind, str(key)


def _describe(
    label: str, key: Any, table: dict[Any, Entry], index: IndicatorIndex
) -> tuple[str, str]:
    if label == "ip":
        return _display("ip", (4 if table is index._ip4 else 6, key))
    if label in ("net4", "net6"):
        version = 4 if label == "net4" else 6
        nets = index._nets4 if version == 4 else index._nets6
        prefix = next(p for p, t in nets.items() if t is table)
        shift = (32 if version == 4 else 128) - prefix
        return _display("cidr", (version, shift, key))
    if label in ("hash", "imphash"):
        return _display(label, key)
    return label, str(key)
