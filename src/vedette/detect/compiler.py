"""Compile pySigma rules into the matching plan (:mod:`vedette.detect.plan`).

pySigma has already parsed the YAML and applied every value modifier when this module runs: a
value arrives as a typed ``SigmaType`` (a ``SigmaString`` with wildcard markers, a
``SigmaRegularExpression``, a ``SigmaExpansion`` of windash/base64offset alternatives, ...). This
module maps each type to a plan matcher, resolves ``expand`` placeholders from the user's values,
interns equal detection items across rules, and parses the condition.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sigma.conditions import ConditionAND
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from vedette.detect.conditions import ConditionError, parse_conditions
from vedette.detect.plan import (
    ANY,
    ONE,
    And,
    AnyOf,
    Cidr,
    Compare,
    CompiledRule,
    DetectionItem,
    Exists,
    FieldRef,
    Glob,
    GlobToken,
    ItemRef,
    Node,
    Not,
    Null,
    Or,
    Regex,
    RuleInfo,
    RuleLogSource,
    RulePlan,
    Selection,
    SelRef,
    TimePart,
    ValueMatcher,
    evaluate,
    item_ids,
    make_glob,
    render_values,
)
from vedette.detect.prefilter import matcher_requirement

MAX_PLACEHOLDER_ALTERNATIVES = 4096
"""A value whose placeholders expand to more alternatives than this is rejected (a typo in a
placeholder file should not turn one rule into millions of patterns)."""

MIN_PREFILTER_LITERAL = 1
"""Shortest literal worth a prefilter item before a regex item: even one rare character (a
backtick in PowerShell obfuscation patterns) spares most events the regex."""

_COMPARE_OPS = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
}
_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_ATTACK_TECHNIQUE = re.compile(r"t\d{4}(?:\.\d{3})?\Z", re.IGNORECASE)


NOTES: dict[str, str] = {
    "keyword": (
        "keyword (field-less) values match as case-insensitive substrings of any field value "
        "(the specification leaves the matching of keywords to the tool)"
    ),
    "neq": (
        "neq holds only when the field has a value that differs (an absent or null field "
        "is not 'different')"
    ),
    "time": (
        "time modifiers read the field as a timestamp (ISO 8601, epoch seconds or "
        "milliseconds) in UTC; week is the ISO week (1-53)"
    ),
}
"""Where Vedette interprets the specification; listed in the load report when rules use them."""


MAX_CONDITION_DEPTH = 100
"""Deepest nesting of ``and``/``or``/``not`` a rule may have (its selections inlined): all
conditions become one generated Python module, and Python refuses an expression nested 200
parentheses deep, which failed every rule of the set."""
_TOO_DEEP = (
    f"condition nested more than {MAX_CONDITION_DEPTH} levels deep (and/or/not, selections"
    " inlined): too deeply nested to compile"
)


def condition_depth(condition: Node, selections: Sequence[Selection]) -> int:
    """Nesting depth of ``condition`` with its selections inlined (no recursion: the tree may be
    deeper than Python's stack)."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(condition, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_CONDITION_DEPTH:
            return deepest
        if isinstance(node, And | Or):
            stack.extend((arg, depth + 1) for arg in node.args)
        elif isinstance(node, Not):
            stack.append((node.arg, depth + 1))
        elif isinstance(node, SelRef):
            stack.append((selections[node.index].tree, depth))
    return deepest


class CompileError(ValueError):
    """A rule pySigma accepted but that Vedette cannot evaluate (reason in the message)."""


@dataclass(slots=True)
class PlanBuilder:
    """Accumulates compiled rules into one :class:`RulePlan`, interning equal items."""

    placeholders: Mapping[str, Sequence[str]] = field(default_factory=dict)
    plan: RulePlan = field(default_factory=RulePlan)
    notes: Counter[str] = field(default_factory=Counter)
    """Interpretation notes (keys of :data:`NOTES`) -> number of loaded rules they concern."""
    _interned: dict[tuple[object, ...], int] = field(default_factory=dict)
    _rule_notes: set[str] = field(default_factory=set)

    def add(self, rule: SigmaRule, path: str | None) -> CompiledRule:
        """Compile ``rule`` and add it to the plan; raises :class:`CompileError`."""
        pending: list[DetectionItem] = []
        self._rule_notes = set()
        names = list(rule.detection.detections)
        selections = tuple(
            Selection(name, self._detection(rule.detection.detections[name], pending))
            for name in names
        )
        try:
            condition = parse_conditions(list(rule.detection.condition), names)
        except ConditionError as exc:
            raise CompileError(str(exc)) from exc
        except RecursionError as exc:
            raise CompileError(_TOO_DEEP) from exc
        if condition_depth(condition, selections) > MAX_CONDITION_DEPTH:
            raise CompileError(_TOO_DEEP)
        # Only now, when the whole rule compiled, do its new items join the plan.
        for item in pending:
            self._interned[item.key()] = item.item_id
            self.plan.items.append(item)
        ids = tuple(sorted({i for s in selections for i in item_ids(s.tree)}))
        compiled = CompiledRule(
            info=rule_info(rule, path),
            selections=selections,
            condition=condition,
            item_ids=ids,
            needs_true_item=evaluate(condition, selections, lambda _i: False) is False,
        )
        self.plan.rules.append(compiled)
        self.notes.update(self._rule_notes)
        return compiled

    # -- detections ------------------------------------------------------------------------

    def _detection(self, detection: SigmaDetection, pending: list[DetectionItem]) -> Node:
        args: list[Node] = []
        for child in detection.detection_items:
            if isinstance(child, SigmaDetection):
                args.append(self._detection(child, pending))
            else:
                args.append(self._item(child, pending))
        if len(args) == 1:
            return args[0]
        return And(tuple(args)) if detection.item_linking is ConditionAND else Or(tuple(args))

    def _item(self, item: SigmaDetectionItem, pending: list[DetectionItem]) -> Node:
        keyword = item.field is None
        values: list[SigmaType] = list(item.value) or [SigmaNull()]
        match_all = item.value_linking is ConditionAND and len(values) > 1
        matchers: list[ValueMatcher] = []
        for value in values:
            matcher = self._matcher(value, keyword)
            if isinstance(matcher, AnyOf) and not match_all:
                matchers.extend(matcher.alternatives)  # OR inside OR: flatten
            else:
                matchers.append(matcher)
        if keyword and any(not _keyword_ok(m) for m in matchers):
            raise CompileError("a keyword (field-less) detection can only hold strings or numbers")
        if keyword:
            self._rule_notes.add("keyword")
        node: Node = ItemRef(self._intern(item.field, tuple(matchers), match_all, pending))
        guard = self._prefilter(item.field, matchers, match_all, pending)
        if guard is not None:
            node = And((guard, node))
        if not item.negated:
            return node
        if keyword:
            return Not(node)
        # neq: "the field is different from the specified values" (modifier appendix v2.1),
        # so the field must hold a value: an absent or null field is not "different".
        self._rule_notes.add("neq")
        null = ItemRef(self._intern(item.field, (Null(),), False, pending))
        return And((Not(null), Not(node)))

    def _prefilter(
        self,
        field_name: str | None,
        matchers: list[ValueMatcher],
        match_all: bool,
        pending: list[DetectionItem],
    ) -> Node | None:
        """A substring item every match of a regex item implies (see :mod:`prefilter`)."""
        if not any(_has_regex(m) for m in matchers):
            return None
        requirements = [matcher_requirement(m) for m in matchers]
        if match_all:
            known = [r for r in requirements if r is not None]
            requirement = max(known, key=_weakest, default=None)
        elif all(r is not None for r in requirements):
            requirement = frozenset().union(*(r for r in requirements if r is not None))
        else:
            requirement = None
        if requirement is None or _weakest(requirement) < MIN_PREFILTER_LITERAL:
            return None
        globs = tuple(make_glob([ANY, literal, ANY]) for literal in sorted(requirement))
        return ItemRef(self._intern(field_name, globs, False, pending))

    def _intern(
        self,
        field_name: str | None,
        matchers: tuple[ValueMatcher, ...],
        match_all: bool,
        pending: list[DetectionItem],
    ) -> int:
        candidate = DetectionItem(-1, field_name, matchers, match_all)
        key = candidate.key()
        known = self._interned.get(key)
        if known is not None:
            return known
        for item in pending:
            if item.key() == key:
                return item.item_id
        item_id = len(self.plan.items) + len(pending)
        pending.append(DetectionItem(item_id, field_name, matchers, match_all))
        return item_id

    # -- values ----------------------------------------------------------------------------

    def _matcher(self, value: SigmaType, keyword: bool) -> ValueMatcher:
        if isinstance(value, SigmaExpansion):
            alternatives: list[ValueMatcher] = []
            for v in value.values:
                m = self._matcher(v, keyword)
                alternatives.extend(m.alternatives if isinstance(m, AnyOf) else [m])
            return alternatives[0] if len(alternatives) == 1 else AnyOf(tuple(alternatives))
        if isinstance(value, SigmaString):
            return self._string(value, keyword)
        if isinstance(value, SigmaTimestampPart):  # before SigmaNumber: it is a subclass
            self._rule_notes.add("time")
            return TimePart(value.timestamp_part.name.lower(), int(value.number))
        if isinstance(value, SigmaNumber):
            # Spelled exactly as an event's numeric value is rendered for matching.
            return _wrap(make_glob([*render_values(value.number)]), keyword)
        if isinstance(value, SigmaBool):
            return make_glob(["true" if value.boolean else "false"])
        if isinstance(value, SigmaNull):
            return Null()
        if isinstance(value, SigmaExists):
            return Exists(bool(value.exists))
        if isinstance(value, SigmaRegularExpression):
            return self._regex(value)
        if isinstance(value, SigmaCIDRExpression):
            return Cidr((str(value.network),))
        if isinstance(value, SigmaCompareExpression):
            op = _COMPARE_OPS.get(value.op)
            if op is None:
                raise CompileError(f"unsupported comparison {value.op.name}")
            return Compare(op, value.number.number)
        if isinstance(value, SigmaFieldReference):
            return FieldRef(value.field, value.starts_with, value.ends_with)
        raise CompileError(f"unsupported value type {type(value).__name__}")

    def _string(self, value: SigmaString, keyword: bool) -> ValueMatcher:
        cased = isinstance(value, SigmaCasedString)
        alternatives = [
            _wrap(make_glob(tokens, cased), keyword) for tokens in self._expand(list(value.s))
        ]
        return alternatives[0] if len(alternatives) == 1 else AnyOf(tuple(alternatives))

    def _expand(self, parts: list[object]) -> list[list[GlobToken]]:
        """Token lists of a string's parts, one per combination of placeholder values."""
        choices: list[list[list[GlobToken]]] = []
        total = 1
        for part in parts:
            if isinstance(part, Placeholder):
                options = [_tokens(SigmaString(v).s) for v in self._placeholder(part.name)]
                total *= len(options)
                if total > MAX_PLACEHOLDER_ALTERNATIVES:
                    raise CompileError(
                        f"placeholders expand to more than {MAX_PLACEHOLDER_ALTERNATIVES} values"
                    )
                choices.append(options)
            else:
                choices.append([_tokens([part])])
        return [[t for chunk in combo for t in chunk] for combo in itertools.product(*choices)]

    def _placeholder(self, name: str) -> Sequence[str]:
        values = self.placeholders.get(name)
        if values is None:
            raise CompileError(
                f"placeholder '%{name}%' has no value (Sigma requires rejecting such a rule; "
                "give values with --placeholders)"
            )
        if not values:
            raise CompileError(f"placeholder '%{name}%' has an empty list of values")
        return values

    def _regex(self, value: SigmaRegularExpression) -> ValueMatcher:
        flags = "".join(sorted(_REGEX_FLAGS[f] for f in value.flags))
        parts = list(value.regexp.s)
        if not any(isinstance(p, Placeholder) for p in parts):
            return Regex(str(value.regexp), flags)
        text = ""
        for part in parts:
            if isinstance(part, Placeholder):
                options = "|".join(re.escape(v) for v in self._placeholder(part.name))
                text += f"(?:{options})"
            elif isinstance(part, SpecialChars):
                text += "*" if part is SpecialChars.WILDCARD_MULTI else "?"
            else:
                text += str(part)
        try:
            re.compile(text)
        except re.error as exc:
            raise CompileError(f"regular expression after placeholders is invalid: {exc}") from exc
        return Regex(text, flags)


def _has_regex(matcher: ValueMatcher) -> bool:
    if isinstance(matcher, AnyOf):
        return any(_has_regex(m) for m in matcher.alternatives)
    return isinstance(matcher, Regex)


def _weakest(requirement: frozenset[str]) -> int:
    return min(len(literal) for literal in requirement)


def _tokens(parts: Sequence[object]) -> list[GlobToken]:
    out: list[GlobToken] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append(ANY)
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(ONE)
        elif isinstance(part, Placeholder):
            raise CompileError(f"nested placeholder %{part.name}% in a placeholder value")
    return out


def _wrap(matcher: ValueMatcher, keyword: bool) -> ValueMatcher:
    """Keyword values match anywhere in a value (what every Sigma engine does for keywords)."""
    if not keyword or not isinstance(matcher, Glob):
        return matcher
    return make_glob([ANY, *matcher.tokens, ANY], matcher.case_sensitive)


def _keyword_ok(matcher: ValueMatcher) -> bool:
    if isinstance(matcher, AnyOf):
        return all(_keyword_ok(m) for m in matcher.alternatives)
    return isinstance(matcher, (Glob, Regex))


def attack_ids(tags: Sequence[str]) -> tuple[str, ...]:
    """ATT&CK technique ids (``T1059.001``) from ``attack.tNNNN[.NNN]`` tags, in tag order."""
    out: list[str] = []
    for tag in tags:
        namespace, _, name = tag.partition(".")
        if namespace.lower() == "attack" and _ATTACK_TECHNIQUE.match(name):
            technique = name.upper()
            if technique not in out:
                out.append(technique)
    return tuple(out)


def rule_info(rule: SigmaRule, path: str | None) -> RuleInfo:
    """The user-facing facts of a pySigma rule."""
    tags = tuple(str(t) for t in rule.tags)
    logsource = rule.logsource
    return RuleInfo(
        id=str(rule.id) if rule.id is not None else (rule.name or rule.title),
        title=rule.title,
        level=str(rule.level) if rule.level is not None else "informational",
        status=str(rule.status) if rule.status is not None else None,
        tags=tags,
        logsource=RuleLogSource(logsource.product, logsource.service, logsource.category),
        path=path,
        name=rule.name,
        attack_ids=attack_ids(tags),
        description=rule.description,
        falsepositives=tuple(str(f) for f in rule.falsepositives or ()),
        references=tuple(str(r) for r in rule.references or ()),
        author=rule.author,
    )
