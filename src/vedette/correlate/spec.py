"""CorrelationSpec: one Sigma correlation rule, as the correlator needs it.

Built from a pySigma ``SigmaCorrelationRule`` (what the engine loads) or from the rule's YAML
mapping (what pySigma refuses: a range condition such as ``gt: 100`` plus ``lte: 200``, which
the specification allows). Both paths validate the same way and raise :class:`SpecError` with
the reason; the correlator turns that into a ``RuleLoadError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vedette.correlate.condition import ConditionError, Threshold
from vedette.correlate.expression import ExpressionError, compile_expression, referenced_names
from vedette.events import AttackRef

TYPES = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
)
"""Correlation types Vedette evaluates (Sigma v2.1 plus ``value_median``, which pySigma accepts)."""

VALUE_TYPES = frozenset(
    {"value_count", "value_sum", "value_avg", "value_percentile", "value_median"}
)
"""Types that measure a field named by ``condition.field``."""

TEMPORAL_TYPES = frozenset({"temporal", "temporal_ordered"})

_TIMESPAN = re.compile(r"(?P<count>[0-9]+)(?P<unit>[smhdwMy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2629746, "y": 31556952}
_ATTACK_TECHNIQUE = re.compile(r"attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


class SpecError(ValueError):
    """A correlation rule that cannot be honoured; the message is the reason."""


@dataclass(slots=True, frozen=True, kw_only=True)
class CorrelationSpec:
    """A correlation rule: what to count, over which rules, per group, in which timespan."""

    title: str
    type: str
    rules: tuple[str, ...]
    timespan_seconds: int
    timespan: str
    threshold: Threshold
    id: str | None = None
    name: str | None = None
    level: str | None = None
    status: str | None = None
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    value_field: tuple[str, ...] = ()
    percentile: float | None = None
    generate: bool = False
    expression: str | None = None
    path: str = "<memory>"
    line: int | None = None

    @property
    def key(self) -> str:
        """The id that correlation detections carry: the rule id, else its name, else title."""
        return self.id or self.name or self.title

    @property
    def attack(self) -> tuple[AttackRef, ...]:
        """ATT&CK techniques from ``attack.tNNNN`` tags."""
        found: list[AttackRef] = []
        for tag in self.tags:
            match = _ATTACK_TECHNIQUE.match(tag)
            if match and all(ref.technique_id != match.group(1).upper() for ref in found):
                found.append(AttackRef(match.group(1).upper()))
        return tuple(found)


def parse_timespan(spec: Any) -> int:
    """Seconds in a Sigma timespan (``90m``); ``SpecError`` when it is not one."""
    match = _TIMESPAN.fullmatch(spec) if isinstance(spec, str) else None
    if match is None or int(match.group("count")) <= 0:
        raise SpecError(f"timespan {spec!r} is not a positive number followed by s/m/h/d/w/M/y")
    return int(match.group("count")) * _UNIT_SECONDS[match.group("unit")]


def spec_from_mapping(
    document: Mapping[str, Any], *, path: str = "<memory>", line: int | None = None
) -> CorrelationSpec:
    """A spec from a correlation rule's YAML mapping (every condition form, ranges included)."""
    body = document.get("correlation")
    if not isinstance(body, Mapping):
        raise SpecError("'correlation' must be a mapping")
    kind = str(body.get("type", "")).lower()
    if kind not in TYPES:
        raise SpecError(f"correlation type {body.get('type')!r} is not supported")
    rules = body.get("rules")
    if isinstance(rules, str):
        rules = [rules]
    expression: str | None = None
    raw_condition = body.get("condition")
    if isinstance(raw_condition, str):
        expression = raw_condition
        raw_condition = None
    if expression is not None:
        try:
            compile_expression(expression)
        except ExpressionError as error:
            raise SpecError(f"condition expression: {error}") from None
        if not rules:
            rules = referenced_names(expression)
    if not rules:
        raise SpecError("correlation has no rules")
    group_by = body.get("group-by") or []
    if isinstance(group_by, str):
        group_by = [group_by]
    aliases = body.get("aliases") or {}
    if not isinstance(aliases, Mapping) or not all(
        isinstance(m, Mapping) for m in aliases.values()
    ):
        raise SpecError("aliases must map each alias to a mapping of rule -> field")
    timespan = body.get("timespan")
    if timespan is None:
        raise SpecError("correlation has no timespan")
    rule_list = [str(rule) for rule in rules or []]
    threshold, value_field, percentile = _condition(kind, raw_condition, len(rule_list), expression)
    generate = body.get("generate", False)
    if not isinstance(generate, bool):
        raise SpecError("generate must be true or false")
    tags = document.get("tags") or []
    return _validated(
        CorrelationSpec(
            title=str(document.get("title") or "untitled correlation"),
            id=_text(document.get("id")),
            name=_text(document.get("name")),
            level=_text(document.get("level")),
            status=_text(document.get("status")),
            tags=tuple(str(tag) for tag in tags),
            type=kind,
            rules=tuple(rule_list),
            timespan=str(timespan),
            timespan_seconds=parse_timespan(timespan),
            threshold=threshold,
            group_by=tuple(str(name) for name in group_by),
            aliases={str(a): {str(r): str(f) for r, f in m.items()} for a, m in aliases.items()},
            value_field=value_field,
            percentile=percentile,
            generate=generate,
            expression=expression,
            path=path,
            line=line,
        )
    )


def spec_from_sigma(rule: Any) -> CorrelationSpec:
    """A spec from a pySigma ``SigmaCorrelationRule`` (duck-typed, so tests need no pySigma)."""
    kind = str(rule.type).lower()
    if kind not in TYPES:
        raise SpecError(f"correlation type {kind!r} is not supported")
    condition = rule.condition
    expression = getattr(condition, "expression", None)
    rules = [ref.reference for ref in rule.rules or []]
    if expression is not None and not rules:
        rules = referenced_names(expression)
    if expression is not None:
        raw: dict[str, Any] | None = None
    else:
        raw = {condition.op.name.lower(): condition.count}
        if condition.fieldref is not None:
            raw["field"] = condition.fieldref
        if condition.percentile is not None:
            raw["percentile"] = condition.percentile
    threshold, value_field, percentile = _condition(kind, raw, len(rules), expression)
    source = getattr(rule, "source", None)
    aliases = {
        alias.alias: {ref.reference: name for ref, name in alias.mapping.items()}
        for alias in rule.aliases
    }
    return _validated(
        CorrelationSpec(
            title=rule.title or "untitled correlation",
            id=str(rule.id) if rule.id is not None else None,
            name=rule.name,
            level=str(rule.level).lower() if rule.level is not None else None,
            status=str(rule.status).lower() if rule.status is not None else None,
            tags=tuple(f"{tag.namespace}.{tag.name}" for tag in rule.tags),
            type=kind,
            rules=tuple(rules),
            timespan=rule.timespan.spec,
            timespan_seconds=int(rule.timespan.seconds),
            threshold=threshold,
            group_by=tuple(rule.group_by or ()),
            aliases=aliases,
            value_field=value_field,
            percentile=percentile,
            generate=bool(rule.generate),
            expression=expression,
            path=str(source.path) if source is not None and source.path is not None else "<memory>",
            line=None,
        )
    )


def _condition(
    kind: str, raw: Any, rule_count: int, expression: str | None
) -> tuple[Threshold, tuple[str, ...], float | None]:
    if expression is not None:
        if kind not in TEMPORAL_TYPES:
            raise SpecError("a condition expression is only allowed for temporal types")
        # The measure is the expression's truth (0 or 1); it fires when it is 1.
        return Threshold.from_mapping({"gte": 1}), (), None
    if raw is None:
        if kind in TEMPORAL_TYPES:
            # Specification: temporal without condition means every referenced rule.
            return Threshold.from_mapping({"gte": rule_count}), (), None
        raise SpecError(f"{kind} correlation has no condition")
    if not isinstance(raw, Mapping):
        raise SpecError("condition must be a mapping such as {gte: 10}")
    try:
        threshold = Threshold.from_mapping(raw)
    except ConditionError as error:
        raise SpecError(str(error)) from None
    value_field = raw.get("field")
    fields: tuple[str, ...] = ()
    if isinstance(value_field, str):
        fields = (value_field,)
    elif isinstance(value_field, list) and value_field:
        fields = tuple(str(name) for name in value_field)
    if kind in VALUE_TYPES and not fields:
        raise SpecError(f"{kind} correlation needs condition.field")
    percentile: float | None = None
    if kind == "value_percentile":
        raw_percentile = raw.get("percentile")
        if raw_percentile is None:
            raise SpecError("value_percentile correlation needs condition.percentile (0-100)")
        try:
            percentile = float(raw_percentile)
        except (TypeError, ValueError):
            raise SpecError(f"percentile {raw_percentile!r} is not a number") from None
        if not 0 <= percentile <= 100:
            raise SpecError(f"percentile {raw_percentile!r} is not between 0 and 100")
    return threshold, fields, percentile


def _validated(spec: CorrelationSpec) -> CorrelationSpec:
    if spec.type not in ("value_count",) and len(spec.value_field) > 1:
        raise SpecError(f"{spec.type} measures one field, not {len(spec.value_field)}")
    if spec.type == "temporal_ordered" and spec.expression is not None:
        raise SpecError("a condition expression on temporal_ordered has no defined order")
    if spec.expression is not None:
        unknown_names = [n for n in referenced_names(spec.expression) if n not in spec.rules]
        if unknown_names:
            raise SpecError(f"expression names rules not in 'rules': {', '.join(unknown_names)}")
    return spec


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
