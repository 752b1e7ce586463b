"""The Sigma engine: compiled rules in, detections out.

For a batch of events the engine (1) asks the item scanner which of the items it covers are
true for each event, (2) routes each event to the rules of its logsource (cached per distinct
logsource), (3) wakes the rules one of whose *trigger* items is true (:mod:`triggers`: the
rarest covered items a rule cannot fire without), plus the few rules that can fire with no
covered item true, and (4) evaluates each woken rule's condition as generated Python code over
the set of true items (:mod:`codegen`), deciding the remaining (uncovered) items lazily, at most
once per event."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from sigma.correlations import SigmaCorrelationRule

from vedette.correlate.spec import CorrelationSpec
from vedette.detect import cache
from vedette.detect.codegen import (
    CODE_VERSION,
    compile_conditions,
    dump_code,
    load_conditions,
    undump_code,
)
from vedette.detect.loader import (
    LoadReport,
    LoadResult,
    RuleSources,
    load_placeholders,
    load_rules,
    read_rule_sources,
)
from vedette.detect.matchers import EventView, ItemTest, item_test
from vedette.detect.plan import (
    RuleInfo,
    RulePlan,
    RuleRouter,
)
from vedette.detect.scanner import AUTO_ORDER, ItemScanner, get_scanner_factory
from vedette.detect.triggers import item_commonness, required_items, trigger_items
from vedette.errors import ConfigError
from vedette.events import AttackRef, Detection, Event, LogSource


@dataclass(slots=True)
class _Route:
    """Rules of one event logsource: per item, the rules it can wake; and the ungated rules."""

    item_rules: dict[int, tuple[int, ...]]
    items: frozenset[int]
    """The keys of ``item_rules``, as a frozenset: intersecting it with an event's true items
    is one C-level operation."""
    always: tuple[int, ...]


class Engine:
    """Evaluates compiled Sigma rules against batches of events.

    Build one with :meth:`from_paths` (rule files and folders, with an optional on-disk cache)
    or :meth:`from_yaml` (rule texts, for tests). ``scanner`` picks the item scanner:
    ``"auto"`` (Hyperscan when available, else the pure-Python index), ``"python"``,
    ``"hyperscan"``, or ``"none"`` (every item by its own Python closure: the slow reference).
    """

    def __init__(
        self,
        result: LoadResult,
        *,
        scanner: str = "auto",
        cache_dir: Path | None = None,
        cache_key: str | None = None,
    ) -> None:
        self._result = result
        self._scanner_name = scanner
        self._cache_dir = cache_dir
        self.cache_key = cache_key
        self._build()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[Path | str],
        *,
        placeholders: Path | None = None,
        cache_dir: Path | None = None,
        scanner: str = "auto",
    ) -> Engine:
        """Load every rule under ``paths`` (files or folders).

        ``placeholders`` is a YAML file of placeholder values for ``|expand`` rules;
        ``cache_dir`` keeps the compiled rule set so the next load of the same files is fast.
        """
        sources = read_rule_sources(paths)
        values = load_placeholders(placeholders)
        return cls._from_sources(sources, values, cache_dir=cache_dir, scanner=scanner)

    @classmethod
    def from_yaml(
        cls,
        *texts: str,
        placeholders: Mapping[str, Sequence[str]] | None = None,
        scanner: str = "auto",
    ) -> Engine:
        """Load rules from YAML texts (each may hold several documents)."""
        sources = RuleSources(texts=[(f"<yaml {i + 1}>", t) for i, t in enumerate(texts)])
        return cls._from_sources(sources, dict(placeholders or {}), scanner=scanner)

    @classmethod
    def _from_sources(
        cls,
        sources: RuleSources,
        placeholders: Mapping[str, Sequence[str]],
        *,
        cache_dir: Path | None = None,
        scanner: str = "auto",
    ) -> Engine:
        result: LoadResult | None = None
        key = ""
        if cache_dir is not None:
            key = cache.fingerprint(sources.texts, placeholders)
            cached = cache.load(cache_dir, key)
            if isinstance(cached, LoadResult):
                result = cached
        if result is None:
            result = load_rules(sources, placeholders=placeholders)
            if cache_dir is not None:
                cache.store(cache_dir, key, result)
        return cls(result, scanner=scanner, cache_dir=cache_dir, cache_key=key or None)

    cache_key: str | None = None
    """Fingerprint of the rule set when loaded with a cache (scanners key their files by it)."""

    def __getstate__(self) -> dict[str, Any]:
        return {
            "result": self._result,
            "scanner": self._scanner_name,
            "cache_dir": self._cache_dir,
            "cache_key": self.cache_key,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._result = state["result"]
        self._scanner_name = state["scanner"]
        self._cache_dir = state["cache_dir"]
        self.cache_key = state["cache_key"]
        self._build()

    def _build(self) -> None:
        plan = self._result.plan
        self.scanner_warnings: list[str] = []
        """Why a preferred scanner was skipped (``scanner="auto"`` only)."""
        self._scanner = _make_scanner(
            self._scanner_name, plan, self._cache_dir, self.scanner_warnings, self.cache_key
        )
        covered = self._scanner.covered if self._scanner is not None else frozenset()
        self._covered = covered
        self._tests: list[ItemTest | None] = [
            None if item.item_id in covered else item_test(item) for item in plan.items
        ]
        self._triggers, self._required, code = self._derived(plan, covered)
        self._conditions, self._matched = load_conditions(code)
        self._routes: dict[LogSource, _Route] = {}
        self._router = RuleRouter(plan.rules)
        self._by_id = {r.info.id: r.info for r in plan.rules}
        self._by_name = {r.info.name: r.info for r in plan.rules if r.info.name}
        self._attack = [tuple(AttackRef(t) for t in r.info.attack_ids) for r in plan.rules]

    def _derived(
        self, plan: RulePlan, covered: frozenset[int]
    ) -> tuple[list[tuple[int, ...] | None], list[frozenset[int] | None], CodeType]:
        """Trigger sets, required items and condition code for this plan and coverage (cached
        when possible)."""
        key = None
        if self._cache_dir is not None and self.cache_key:
            digest = hashlib.sha256(f"{self.cache_key}:{sys.version}:{CODE_VERSION}:".encode())
            digest.update(",".join(map(str, sorted(covered))).encode())
            key = digest.hexdigest()[:32]
            cached = cache.load(self._cache_dir, key, kind="engine")
            if isinstance(cached, tuple) and len(cached) == 3:
                try:
                    return cached[0], cached[1], undump_code(cached[2])
                except (ValueError, EOFError, TypeError):
                    pass
        commonness = item_commonness(plan.items, plan.rules)
        triggers = [trigger_items(rule, covered, commonness) for rule in plan.rules]
        required = [required_items(rule, covered) for rule in plan.rules]
        code = compile_conditions(plan.rules, covered)
        if key is not None and self._cache_dir is not None:
            blob = (triggers, required, dump_code(code))
            cache.store(self._cache_dir, key, blob, kind="engine")
        return triggers, required, code

    # -- public API --------------------------------------------------------------------------

    @property
    def rules(self) -> list[RuleInfo]:
        """Every loaded (detection) rule."""
        return [r.info for r in self._result.plan.rules]

    @property
    def load_report(self) -> LoadReport:
        """Counts and every rule that was not loaded, with the reason."""
        return self._result.report

    @property
    def correlation_rules(self) -> list[SigmaCorrelationRule | CorrelationSpec]:
        """Correlation rules (pySigma objects, references resolved), for the correlator."""
        return self._result.correlation_rules

    @property
    def plan(self) -> RulePlan:
        """The compiled matching plan (for scanners, benchmarks and tools)."""
        return self._result.plan

    @property
    def scanner(self) -> ItemScanner | None:
        """The item scanner in use (None with ``scanner="none"``)."""
        return self._scanner

    def rule(self, ref: str) -> RuleInfo | None:
        """A loaded rule by id or by name."""
        return self._by_id.get(ref) or self._by_name.get(ref)

    def rule_by_id(self, rule_id: str) -> RuleInfo | None:
        """A loaded rule by its id."""
        return self._by_id.get(rule_id)

    def rule_by_name(self, name: str) -> RuleInfo | None:
        """A loaded rule by its ``name`` attribute."""
        return self._by_name.get(name)

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """Detections of every rule on every event of the batch, in event order."""
        if not events:
            return []
        if self._scanner is not None:
            decided = self._scanner.decide(events)
        else:
            decided = [set() for _ in events]
        out: list[Detection] = []
        routes, conditions, tests = self._routes, self._conditions, self._tests
        required = self._required
        for event, true_items in zip(events, decided, strict=True):
            route = routes.get(event.logsource)
            if route is None:
                route = self._route(event.logsource)
            hits = route.items.intersection(true_items)
            if hits:
                # the rules each true trigger item wakes, in C
                candidates = set().union(*map(route.item_rules.__getitem__, hits))
                candidates.update(route.always)
            elif route.always:
                candidates = set(route.always)
            else:
                continue
            lazy: Callable[[int], bool] | None = None
            for index in sorted(candidates):
                needed = required[index]
                if needed is not None and not needed <= true_items:
                    continue
                if lazy is None:
                    lazy = _lazy_items(event, tests)
                if conditions[index](true_items, lazy):
                    out.append(self._detection(index, event, true_items, lazy))
        return out

    # -- internals ---------------------------------------------------------------------------

    def _route(self, logsource: LogSource) -> _Route:
        woken: dict[int, list[int]] = {}
        always: list[int] = []
        for index in self._router.admitting(logsource):
            triggers = self._triggers[index]
            if triggers is None:
                always.append(index)
                continue
            # The rule can only fire when one of its trigger items is true.
            for item_id in triggers:
                woken.setdefault(item_id, []).append(index)
        item_rules = {item_id: tuple(indexes) for item_id, indexes in woken.items()}
        route = _Route(item_rules, frozenset(item_rules), tuple(always))
        self._routes[logsource] = route
        return route

    def _detection(
        self, index: int, event: Event, true_items: set[int], lazy: Callable[[int], bool]
    ) -> Detection:
        info = self._result.plan.rules[index].info
        return Detection(
            rule_id=info.id,
            rule_title=info.title,
            level=info.level,
            event=event,
            status=info.status,
            tags=info.tags,
            attack=self._attack[index],
            matched=self._matched[index](true_items, lazy),
            kind="sigma",
            rule_name=info.name,
            rule_path=info.path,
        )


def _lazy_items(event: Event, tests: list[ItemTest | None]) -> Callable[[int], bool]:
    """Truth of the items no scanner decides, each worked out at most once for ``event``."""
    view = EventView(event.fields)
    memo: dict[int, bool] = {}

    def lazy(item_id: int) -> bool:
        value = memo.get(item_id)
        if value is None:
            test = tests[item_id]
            value = memo[item_id] = test(view) if test is not None else False
        return value

    return lazy


def _make_scanner(
    name: str,
    plan: RulePlan,
    cache_dir: Path | None,
    warnings: list[str],
    plan_key: str | None = None,
) -> ItemScanner | None:
    """The scanner ``name`` asks for; ``"auto"`` falls back (with a warning) past a broken one."""
    if name == "none":
        return None
    names = AUTO_ORDER if name == "auto" else (name,)
    for candidate in names:
        try:
            factory = get_scanner_factory(candidate)
        except ImportError as exc:
            # A native library that is present but unusable (wrong CPU, missing libhs...):
            # with "auto" the next scanner does the job; asked for by name, it is an error.
            if name != "auto":
                raise ConfigError(f"item scanner {name!r} cannot be loaded: {exc}") from exc
            warnings.append(f"item scanner {candidate!r} unavailable ({exc}); using the next")
            continue
        if factory is not None:
            return factory(plan, cache_dir, plan_key)
    raise ConfigError(f"item scanner {name!r} is not available")
