"""`vedette rules list` and `vedette rules check`: what a rule set holds, and what will not load."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from vedette.cli.registry import CommandRegistry
from vedette.detect import Engine, LoadReport
from vedette.detect.plan import RuleInfo
from vedette.events import LEVELS, level_rank
from vedette.paths import cache_dir as default_cache_dir
from vedette.pipeline.build import load_rule_set

LIST_DESCRIPTION = """\
List the rules Vedette would run: id, level, status, title, logsource and ATT&CK techniques.
Without --rules, the default rule paths are used (bundled starter pack plus the rule set
installed by `vedette rules update`).

examples:
  vedette rules list
  vedette rules list --rules ./sigma/rules --level high
"""

CHECK_DESCRIPTION = """\
Load rule files and folders and report every rule that does not load, with file, line and
reason. Exit status 0 when every rule loads, 1 when some do not (or PATH holds no rules).
`vedette rules list` prints the command that checks the rules `vedette scan` uses by default.

examples:
  vedette rules check ./my-rules
  vedette rules check ./sigma/rules-placeholder --placeholders ./placeholders.yml
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--placeholders",
        type=Path,
        metavar="FILE",
        help="YAML file of placeholder values for rules using the expand modifier",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="compiled-rule cache (default: $XDG_CACHE_HOME/vedette, ~/.cache/vedette)",
    )
    cache.add_argument(
        "--no-cache",
        action="store_true",
        help="compile the rules without reading or writing a cache",
    )


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        action="append",
        type=Path,
        metavar="PATH",
        help="rule file or folder (repeatable; default: the bundled and installed rules)",
    )
    parser.add_argument(
        "--level",
        choices=LEVELS,
        help="only rules of this level or higher",
    )
    parser.add_argument(
        "--format",
        choices=["auto", "table", "tsv"],
        default="auto",
        help="table on a terminal, tab-separated values when piped (default: auto)",
    )
    _common(parser)


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule file or folder")
    _common(parser)


def _default_paths() -> list[Path]:
    from vedette.rulepacks.paths import default_rule_paths  # never empty: the starter pack

    return default_rule_paths()


def _load(paths: list[Path], args: argparse.Namespace) -> Engine:
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    return load_rule_set(paths, placeholders=args.placeholders, cache_dir=cache_dir)


def _run_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from vedette.cli.cmd_intel import wide_console

    paths = list(args.rules) if args.rules else _default_paths()
    engine = _load(paths, args)
    rules: list[RuleInfo] = engine.rules
    if args.level:
        floor = level_rank(args.level)
        rules = [r for r in rules if level_rank(r.level) >= floor]
    rules = sorted(rules, key=lambda r: (-level_rank(r.level), r.title.lower()))
    columns = ("id", "level", "status", "title", "logsource", "techniques")
    rows = [
        (
            rule.id,
            rule.level,
            rule.status or "",
            rule.title,
            str(rule.logsource),
            " ".join(rule.attack_ids),
        )
        for rule in rules
    ]
    use_table = args.format == "table" or (args.format == "auto" and sys.stdout.isatty())
    if use_table:
        table = Table(title=f"{len(rules)} rules")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))  # titles are data, not Rich markup
        wide_console().print(table)
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join(row))
    report = engine.load_report
    if report.errors:
        print(
            f"{len(report.errors)} rule(s) not loaded; for file, line and reason run:\n"
            f"  vedette rules check {' '.join(shlex.quote(str(p)) for p in paths)}",
            file=sys.stderr,
        )
    return 0


def format_report(report: LoadReport) -> list[str]:
    """The load report as lines: a summary, then every rule that was not loaded."""
    lines = [
        f"files: {report.files}",
        f"rules loaded: {report.loaded}",
        f"correlation rules: {report.correlations}",
        f"filters: {report.filters} (applied to {report.filtered_rules} rules)",
        f"not loaded: {len(report.errors)}",
    ]
    for note in report.notes:
        lines.append(f"note: {note}")
    for error in sorted(report.errors, key=lambda e: (e.path, e.line or 0)):
        title = f" [{error.title}]" if error.title else ""
        lines.append(f"  {error}{title}")
    return lines


def _run_check(args: argparse.Namespace) -> int:
    engine = _load(list(args.paths), args)
    for line in format_report(engine.load_report):
        print(line)
    return 1 if engine.load_report.errors else 0


def register(registry: CommandRegistry) -> None:
    """Register `vedette rules list` and `vedette rules check`."""
    registry.group(("rules",), "Sigma rules: list, check, update")
    registry.add(
        ("rules", "list"),
        "list the rules that would run",
        _configure_list,
        _run_list,
        LIST_DESCRIPTION,
    )
    registry.add(
        ("rules", "check"),
        "load rules and report every rule that does not load, and why",
        _configure_check,
        _run_check,
        CHECK_DESCRIPTION,
    )
