"""Resolving what correlation rules refer to: base rules and other correlations, by id or name.

The specification lets ``rules`` (and ``aliases``) name a rule by its ``id`` or its ``name``,
and lets a correlation refer to another correlation (a chain). Resolution here is Vedette's
own, not pySigma's ``resolve_rule_references``, so that one unknown reference or one cycle
makes one load error for the rules concerned instead of failing the whole collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vedette.correlate.spec import CorrelationSpec


@dataclass(slots=True, frozen=True)
class BaseRule:
    """A detection rule a correlation can refer to: the id its detections carry, its name."""

    rule_id: str
    name: str | None = None


def base_rule_index(rules: Iterable[Any] | Mapping[str, Any]) -> dict[str, BaseRule]:
    """Index of base rules by id and by name.

    Accepts objects with ``id`` and ``name`` attributes (the engine's ``RuleInfo``, pySigma's
    ``SigmaRule``), :class:`BaseRule` objects, or a mapping from reference to such objects or
    to the detection rule id.
    """
    index: dict[str, BaseRule] = {}
    if isinstance(rules, Mapping):
        for reference, target in rules.items():
            rule = _as_base_rule(target)
            if rule is not None:
                index[_norm(str(reference))] = rule
        return index
    for item in rules:
        rule = _as_base_rule(item)
        if rule is None:
            continue
        index.setdefault(_norm(rule.rule_id), rule)
        if rule.name:
            index.setdefault(_norm(rule.name), rule)
    return index


def _as_base_rule(item: Any) -> BaseRule | None:
    if isinstance(item, BaseRule):
        return item
    if isinstance(item, str):
        return BaseRule(item)
    rule_id = getattr(item, "rule_id", None) or getattr(item, "id", None)
    name = getattr(item, "name", None)
    if rule_id is None and name is None:
        return None
    return BaseRule(str(rule_id) if rule_id is not None else str(name), name)


def _norm(reference: str) -> str:
    """References compare as written, except UUIDs, which compare without case."""
    text = reference.strip()
    return text.lower() if len(text) == 36 and text.count("-") == 4 else text


@dataclass(slots=True, frozen=True)
class Target:
    """What one entry of a correlation's ``rules`` resolved to."""

    base: BaseRule | None = None
    correlation: int | None = None
    """Index of the referenced correlation in the resolved list."""


AliasFields = dict[str, dict[int, str]]
"""For each alias: the event field that holds it, by index of the rule in ``rules``."""


@dataclass(slots=True)
class Resolution:
    """Correlations that can run, what each refers to, and those that cannot (with reasons)."""

    specs: list[CorrelationSpec]
    targets: list[list[Target]]
    failed: list[tuple[CorrelationSpec, str]]
    aliases: list[AliasFields]


def resolve(specs: list[CorrelationSpec], base: Mapping[str, BaseRule]) -> Resolution:
    """Resolve every reference; drop cycles, unknown references and what depends on them."""
    by_ref: dict[str, int] = {}
    failed: list[tuple[CorrelationSpec, str]] = []
    kept: list[CorrelationSpec] = []
    for spec in specs:
        refs = [ref for ref in (spec.id, spec.name) if ref]
        clash = next((ref for ref in refs if _norm(ref) in by_ref), None)
        if clash is not None:
            failed.append((spec, f"another correlation already uses the id or name {clash!r}"))
            continue
        for ref in refs:
            by_ref[_norm(ref)] = len(kept)
        kept.append(spec)

    def target_of(ref: str) -> Target | None:
        key = _norm(ref)
        if key in by_ref:
            return Target(correlation=by_ref[key])
        if key in base:
            return Target(base=base[key])
        return None

    targets: list[list[Target] | None] = []
    alias_fields: list[AliasFields] = []
    reasons: dict[int, str] = {}
    for position, spec in enumerate(kept):
        resolved: list[Target] = []
        for ref in spec.rules:
            target = target_of(ref)
            if target is None:
                reasons[position] = f"refers to rule {ref!r}, which is not loaded"
                break
            resolved.append(target)
        targets.append(None if position in reasons else resolved)
        fields, problem = _alias_fields(spec, resolved, target_of)
        alias_fields.append(fields)
        if problem is not None and position not in reasons:
            reasons[position] = problem

    _mark_cycles(targets, reasons)
    _mark_dependents(targets, reasons)

    final_index: dict[int, int] = {}
    final_specs: list[CorrelationSpec] = []
    final_aliases: list[AliasFields] = []
    for position, spec in enumerate(kept):
        if position in reasons:
            failed.append((spec, reasons[position]))
        else:
            final_index[position] = len(final_specs)
            final_specs.append(spec)
            final_aliases.append(alias_fields[position])
    final_targets: list[list[Target]] = []
    for position in final_index:
        row = targets[position]
        assert row is not None
        final_targets.append(
            [
                Target(correlation=final_index[t.correlation]) if t.correlation is not None else t
                for t in row
            ]
        )
    return Resolution(final_specs, final_targets, failed, final_aliases)


def _alias_fields(
    spec: CorrelationSpec,
    targets: list[Target],
    target_of: Callable[[str], Target | None],
) -> tuple[AliasFields, str | None]:
    """Alias fields by rule index; alias keys may name a rule by name while ``rules`` uses
    its id (the specification keys aliases by name), so both resolve to targets first."""
    fields: AliasFields = {}
    for alias, mapping in spec.aliases.items():
        by_index: dict[int, str] = {}
        for ref, field_name in mapping.items():
            target = target_of(ref)
            indexes = [i for i, t in enumerate(targets) if target is not None and t == target]
            if not indexes:
                return fields, f"alias {alias!r} maps rule {ref!r}, which is not in 'rules'"
            for index in indexes:
                by_index[index] = field_name
        fields[alias] = by_index
    return fields, None


def _mark_cycles(targets: list[list[Target] | None], reasons: dict[int, str]) -> None:
    state: dict[int, int] = {}  # 1 = on the path, 2 = done

    def visit(node: int, path: list[int]) -> None:
        state[node] = 1
        path.append(node)
        for target in targets[node] or []:
            nxt = target.correlation
            if nxt is None:
                continue
            if state.get(nxt) == 1:
                for member in path[path.index(nxt) :]:
                    reasons.setdefault(member, "is part of a cycle of correlations")
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in range(len(targets)):
        if node not in state:
            visit(node, [])


def _mark_dependents(targets: list[list[Target] | None], reasons: dict[int, str]) -> None:
    changed = True
    while changed:
        changed = False
        for node, row in enumerate(targets):
            if node in reasons or row is None:
                continue
            for target in row:
                if target.correlation is not None and target.correlation in reasons:
                    reasons[node] = "refers to a correlation that could not be loaded"
                    changed = True
                    break
