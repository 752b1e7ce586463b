"""Load Sigma rule files with pySigma, apply filters, compile, and report what did not load.

One bad rule never stops the rest: a file that is not YAML, a rule pySigma rejects, a filter
that cannot be applied, a correlation whose rules are missing and a rule Vedette cannot compile
each become a :class:`~vedette.errors.RuleLoadError` in the :class:`LoadReport`. pySigma's
exceptions are translated here and nowhere else.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule, SigmaYAMLLoader

from vedette.correlate.plain_yaml import load_plain
from vedette.correlate.ranges import split_range_correlations
from vedette.correlate.references import base_rule_index, resolve
from vedette.correlate.spec import CorrelationSpec, spec_from_sigma
from vedette.detect import sigma_compat
from vedette.detect.compiler import NOTES, CompileError, PlanBuilder
from vedette.detect.plan import RulePlan
from vedette.errors import ConfigError, RuleLoadError

RULE_SUFFIXES = (".yml", ".yaml")


@dataclass(slots=True)
class LoadReport:
    """What loading a rule set did: counts, and every rule that was not loaded and why."""

    loaded: int = 0
    errors: list[RuleLoadError] = field(default_factory=list)
    files: int = 0
    correlations: int = 0
    filters: int = 0
    filtered_rules: int = 0
    notes: list[str] = field(default_factory=list)
    """Departures from the specification that apply to this rule set (also in the docs)."""

    @property
    def failed(self) -> int:
        """Number of rules (or files) that did not load."""
        return len(self.errors)


@dataclass(slots=True)
class LoadResult:
    """A compiled plan, its load report, and the correlation rules (not compiled)."""

    plan: RulePlan
    report: LoadReport
    correlation_rules: list[SigmaCorrelationRule | CorrelationSpec]


def rule_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Rule files under ``paths`` (folders recursively, ``.yml``/``.yaml``), sorted per folder."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file()
            )
        else:
            yield path


def load_placeholders(path: Path | None) -> dict[str, list[str]]:
    """Placeholder values from a YAML mapping ``name: value | [values]``.

    The mapping may also sit under a top-level ``placeholders:`` key. Values are Sigma strings
    (``*`` and ``?`` are wildcards).
    """
    if path is None:
        return {}
    try:
        data = load_plain(path.read_text(encoding="utf-8"))  # aliases refused: bombs
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read placeholder file {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("placeholders"), dict):
        data = data["placeholders"]
    if not isinstance(data, dict):
        raise ConfigError(f"placeholder file {path} must be a mapping of name to values")
    out: dict[str, list[str]] = {}
    for name, values in data.items():
        items = values if isinstance(values, list) else [values]
        out[str(name)] = ["" if v is None else str(v) for v in items]
    return out


@dataclass(slots=True)
class RuleSources:
    """Rule files read into memory: (path, text) pairs and the files that could not be read."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[RuleLoadError] = field(default_factory=list)


def read_rule_sources(paths: Iterable[Path | str]) -> RuleSources:
    """Read every rule file under ``paths``; unreadable ones become load errors."""
    sources = RuleSources()
    for path in rule_files(paths):
        try:
            sources.texts.append((str(path), path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            sources.errors.append(RuleLoadError(path=str(path), reason="no such file or folder"))
        except (OSError, UnicodeDecodeError) as exc:
            sources.errors.append(RuleLoadError(path=str(path), reason=f"cannot read: {exc}"))
    return sources


def load_rules(
    sources: RuleSources, *, placeholders: Mapping[str, Sequence[str]] | None = None
) -> LoadResult:
    """Parse, filter and compile rules from their (path, YAML text) ``sources``."""
    sigma_compat.install()
    report = LoadReport(files=len(sources.texts) + len(sources.errors))
    report.errors.extend(sources.errors)
    sources_by_rule: dict[int, tuple[str, str]] = {}  # id(rule) -> (path, text)
    collections: list[SigmaCollection] = []
    range_specs: list[CorrelationSpec] = []
    for name, text in sources.texts:
        text = _take_range_correlations(name, text, report, range_specs)
        _parse_file(name, text, report, collections, sources_by_rule)

    rules: list[SigmaRule | SigmaCorrelationRule] = []
    filters: list[SigmaFilter] = []
    for collection in collections:
        rules.extend(collection.rules)
        filters.extend(collection.filters)
    filters = [f for f in filters if _accepted(f, sources_by_rule, report)]
    report.filters = len(filters)
    valid = [r for r in rules if _accepted(r, sources_by_rule, report)]
    valid = _apply_filters(valid, filters, sources_by_rule, report)
    everything = SigmaCollection(list[Any](valid), resolve_references=False)

    builder = PlanBuilder(placeholders=placeholders or {})
    correlations: list[SigmaCorrelationRule | CorrelationSpec] = list(range_specs)
    for rule in valid:
        path, text = sources_by_rule.get(id(rule), ("<unknown>", ""))
        try:
            if isinstance(rule, SigmaCorrelationRule):
                rule.resolve_rule_references(everything)
                correlations.append(rule)
            else:
                builder.add(rule, path)
                report.loaded += 1
        except (CompileError, SigmaError) as exc:
            report.errors.append(_error(rule, path, text, str(exc)))
        except Exception as exc:  # a bug or pySigma surprise must not stop the other rules
            reason = f"internal error ({type(exc).__name__}: {exc})"
            report.errors.append(_error(rule, path, text, reason))
    correlations = _honourable(correlations, builder.plan.rules, sources_by_rule, report)
    report.correlations = len(correlations)
    ids = Counter(rule.info.id for rule in builder.plan.rules)
    shared = sorted(rule_id for rule_id, count in ids.items() if count > 1)
    if shared:
        listed = ", ".join(shared[:10]) + (" ..." if len(shared) > 10 else "")
        report.notes.append(
            f"{len(shared)} rule id(s) used by more than one rule (lookups by id see the last): "
            + listed
        )
    report.notes += [
        f"{count} rule(s): {NOTES[key]}" for key, count in sorted(builder.notes.items())
    ]
    return LoadResult(builder.plan, report, correlations)


# -- helpers -----------------------------------------------------------------------------------


def _take_range_correlations(
    path: str, text: str, report: LoadReport, specs: list[CorrelationSpec]
) -> str:
    """Take out correlation documents whose condition is a range (``gte`` + ``lte``).

    pySigma 2.0 refuses a condition with several operators and loses the whole file with it,
    although the specification allows ranges; Vedette's correlator reads those documents
    itself, and the rest of the file (line numbers kept) goes to pySigma as usual.
    """
    if "correlation" not in text:
        return text
    split = split_range_correlations(text, path=path)
    specs.extend(split.specs)
    for line, reason in split.errors:
        report.errors.append(RuleLoadError(path=path, line=line, reason=reason))
    return split.text


def _parse_file(
    path: str,
    text: str,
    report: LoadReport,
    collections: list[SigmaCollection],
    sources: dict[int, tuple[str, str]],
) -> None:
    documents: list[Any] = []
    try:
        # libyaml (pySigma's own loader, which also rejects duplicate keys): ten times faster
        # than the pure-Python parser that SigmaCollection.from_yaml uses.
        documents = list(yaml.load_all(text, Loader=SigmaYAMLLoader))
        collection = _collection(documents, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        report.errors.append(RuleLoadError(path=path, line=line, reason=f"not YAML: {problem}"))
        return
    except SigmaError as exc:
        if _independent(documents):
            _parse_each(path, text, documents, report, collections, sources)
        else:
            report.errors.append(RuleLoadError(path=path, reason=_reason(exc)))
        return
    except Exception as exc:  # pySigma raising something else on odd input
        reason = f"cannot parse ({type(exc).__name__}: {exc})"
        report.errors.append(RuleLoadError(path=path, reason=reason))
        return
    _keep(path, text, collection, report, collections, sources)


def _collection(documents: list[Any], path: str) -> SigmaCollection:
    return SigmaCollection.from_dicts(
        documents,
        collect_errors=True,
        source=SigmaRuleLocation(Path(path)),
        collect_filters=True,
        resolve_references=False,
    )


def _independent(documents: list[Any]) -> bool:
    """Several documents that stand alone (no Sigma 1 ``action: global``/``reset`` merging)."""
    rules = [d for d in documents if d is not None]
    return len(rules) > 1 and not any(isinstance(d, dict) and "action" in d for d in rules)


def _document_lines(text: str) -> list[int]:
    """The 1-based line of each YAML document's first content (its ``title:``, not ``---``)."""
    lines: list[int] = []
    opened = False
    try:
        for event in yaml.parse(text, Loader=SigmaYAMLLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                opened = True
            elif opened:
                opened = False
                mark = event.start_mark
                lines.append(mark.line + 1 if mark is not None else 0)
    except yaml.YAMLError:
        return []
    return lines


def _parse_each(
    path: str,
    text: str,
    documents: list[Any],
    report: LoadReport,
    collections: list[SigmaCollection],
    sources: dict[int, tuple[str, str]],
) -> None:
    """Parse a multi-document file one document at a time.

    pySigma does not collect errors of correlation documents: one bad correlation raised for the
    whole file and took every rule beside it down. Here it costs only its own document.
    """
    lines = _document_lines(text)
    for index, document in enumerate(documents):
        if document is None:
            continue
        try:
            collection = _collection([document], path)
        except SigmaError as exc:
            title = document.get("title") if isinstance(document, dict) else None
            report.errors.append(
                RuleLoadError(
                    path=path,
                    line=lines[index] if index < len(lines) else None,
                    reason=_reason(exc),
                    title=str(title) if title is not None else None,
                )
            )
            continue
        _keep(path, text, collection, report, collections, sources)


def _keep(
    path: str,
    text: str,
    collection: SigmaCollection,
    report: LoadReport,
    collections: list[SigmaCollection],
    sources: dict[int, tuple[str, str]],
) -> None:
    own = {id(e) for rule in [*collection.rules, *collection.filters] for e in rule.errors}
    for error in collection.errors:  # rules' own errors are repeated here: report them once
        if id(error) not in own:
            line = _line(error)
            report.errors.append(RuleLoadError(path=path, line=line, reason=_reason(error)))
    for rule in [*collection.rules, *collection.filters]:
        sources[id(rule)] = (path, text)
    collections.append(collection)


def _accepted(rule: Any, sources: dict[int, tuple[str, str]], report: LoadReport) -> bool:
    if not rule.errors:
        return True
    path, text = sources.get(id(rule), ("<unknown>", ""))
    reasons = "; ".join(dict.fromkeys(_reason(e) for e in rule.errors))
    line = next((_line(e) for e in rule.errors if _line(e) is not None), None)
    error = _error(rule, path, text, reasons)
    if line is not None:
        error = RuleLoadError(
            path=error.path,
            line=line,
            reason=error.reason,
            rule_id=error.rule_id,
            title=error.title,
        )
    report.errors.append(error)
    return False


def _apply_filters(
    rules: list[SigmaRule | SigmaCorrelationRule],
    filters: list[SigmaFilter],
    sources: dict[int, tuple[str, str]],
    report: LoadReport,
) -> list[SigmaRule | SigmaCorrelationRule]:
    if not filters:
        return rules
    out: list[SigmaRule | SigmaCorrelationRule] = []
    for rule in rules:
        if isinstance(rule, SigmaCorrelationRule):
            out.append(rule)
            continue
        before = list(rule.detection.condition)
        try:
            for sigma_filter in filters:
                applied = sigma_filter.apply_on_rule(rule)
                assert isinstance(applied, SigmaRule)
                rule = applied
        except SigmaError as exc:
            path, text = sources.get(id(rule), ("<unknown>", ""))
            report.errors.append(_error(rule, path, text, f"filter cannot be applied: {exc}"))
            continue
        if list(rule.detection.condition) != before:
            report.filtered_rules += 1
        out.append(rule)
    _note_unknown_filter_targets(rules, filters, report)
    return out


def _note_unknown_filter_targets(
    rules: list[SigmaRule | SigmaCorrelationRule], filters: list[SigmaFilter], report: LoadReport
) -> None:
    """A filter naming a rule that is not loaded is legal, but usually a typo or a stale id."""
    known = {str(r.id) for r in rules if r.id is not None} | {r.name for r in rules if r.name}
    for sigma_filter in filters:
        targets = sigma_filter.filter.rules
        if isinstance(targets, str):  # "any"
            continue
        missing = [t.reference for t in targets if str(t.reference) not in known]
        if missing:
            names = ", ".join(str(m) for m in missing)
            report.notes.append(f"filter {sigma_filter.title!r} names rules not loaded: {names}")


def _reason(error: SigmaError) -> str:
    text = str(error)
    # pySigma appends " in <path>[:line]" from the error's source; the report has its own.
    source = getattr(error, "source", None)
    if source is not None:
        suffix = f" in {source}"
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text.strip() or type(error).__name__


def _line(error: SigmaError) -> int | None:
    source = getattr(error, "source", None)
    return getattr(source, "line", None)


_QUOTED = re.compile(r"'([^']{2,})'")


def _honourable(
    correlations: list[SigmaCorrelationRule | CorrelationSpec],
    rules: Sequence[Any],
    sources_by_rule: Mapping[int, tuple[str, str]],
    report: LoadReport,
) -> list[SigmaCorrelationRule | CorrelationSpec]:
    """The correlations a correlator can run; the rest (in a cycle, naming themselves, naming a
    rule that is not loaded...) become load errors here, so that ``rules check`` reports what a
    scan would refuse, and the scan has nothing left to refuse."""
    specs: list[tuple[SigmaCorrelationRule | CorrelationSpec, CorrelationSpec]] = []
    for rule in correlations:
        try:
            spec = rule if isinstance(rule, CorrelationSpec) else spec_from_sigma(rule)
        except Exception:  # the correlator reports what it cannot read
            continue
        specs.append((rule, spec))
    resolution = resolve([spec for _rule, spec in specs], base_rule_index([r.info for r in rules]))
    if not resolution.failed:
        return correlations
    why = {id(spec): reason for spec, reason in resolution.failed}
    refused: set[int] = set()
    for rule, spec in specs:
        reason = why.get(id(spec))
        if reason is None:
            continue
        refused.add(id(rule))
        reason = f"correlation cannot be honoured: {reason}"
        if isinstance(rule, CorrelationSpec):
            error = RuleLoadError(
                path=spec.path, reason=reason, line=spec.line, rule_id=spec.id, title=spec.title
            )
        else:
            path, text = sources_by_rule.get(id(rule), (spec.path, ""))
            error = _error(rule, path, text, reason)
            title_line = f"title: {spec.title}" if spec.title else None
            for number, line in enumerate(text.splitlines(), 1):
                if title_line is not None and line.strip() == title_line:
                    error = replace(error, line=number)
                    break
        report.errors.append(error)
    return [rule for rule in correlations if id(rule) not in refused]


def _error(rule: Any, path: str, text: str, reason: str) -> RuleLoadError:
    rule_id = str(rule.id) if getattr(rule, "id", None) is not None else None
    title = getattr(rule, "title", None) or None
    return RuleLoadError(
        path=path,
        line=_locate(text, rule_id, reason),
        reason=reason,
        rule_id=rule_id,
        title=title,
    )


def _locate(text: str, rule_id: str | None, reason: str) -> int | None:
    """Best-effort line of a rule error: the quoted token of the message, else the rule id."""
    if not text:
        return None
    lines = text.splitlines()
    for token in _QUOTED.findall(reason):
        for number, line in enumerate(lines, 1):
            if token in line:
                return number
    if "condition" in reason:
        for number, line in enumerate(lines, 1):
            if line.strip().startswith("condition:"):
                return number
    if rule_id:
        for number, line in enumerate(lines, 1):
            if line.startswith("id:") and rule_id in line:
                return number
    return 1 if len(lines) else None
