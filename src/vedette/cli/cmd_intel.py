"""`vedette intel ...`: check indicator feeds, sweep logs for known-bad indicators."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vedette.cli.registry import CommandRegistry
from vedette.errors import InputError
from vedette.events import LEVELS, level_rank
from vedette.intel.attack import AttackKB
from vedette.intel.feeds import FeedSpec, expand_feed_paths
from vedette.intel.index import IndicatorIndex

if TYPE_CHECKING:
    from vedette.sources import ReadReport

CHECK_DESCRIPTION = """\
Load indicator feeds and report what was understood: indicators per type, what was skipped
(MISP attributes not flagged to_ids, types Vedette does not match) and every pattern or value
that could not be used, with the reason. Nothing is dropped silently.

feeds: STIX 2.x bundles, MISP event JSON, MISP feed folders (manifest.json), CSV with a header,
plain lists (one value per line), or a YAML feed list (feeds: [{path, source, type, level}]).

examples:
  vedette intel check cert-bundle.json misp-feed/ blocklist.txt
  vedette intel check --type ip blocked-addresses.txt
  vedette intel check feeds.yaml --json
"""

PIPED_WIDTH = 200
"""Table width when output goes to a file or pipe (Rich would otherwise squeeze it into 80)."""


def wide_console() -> Console:
    """A console that keeps tables readable in `| less` and redirected files."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPED_WIDTH)


SWEEP_DESCRIPTION = """\
Sweep logs for known-bad indicators only (no Sigma rules): addresses and networks, domains and
their subdomains, URLs, file hashes and e-mail addresses, in the fields listed in
vedette/intel/data/fields.yaml. For rules and indicators together, use
`vedette scan --intel FEED`.

examples:
  vedette intel sweep --intel cert-bundle.json ./collected-logs
  vedette intel sweep --intel feeds.yaml C:/triage --jsonl > hits.jsonl
"""


def _specs(args: argparse.Namespace, feeds: list[Path]) -> list[FeedSpec]:
    specs = expand_feed_paths(list(feeds))
    overrides = {
        k: v
        for k, v in (("type", args.type), ("source", args.source), ("level", args.level))
        if v is not None
    }
    if not overrides:
        return specs
    from dataclasses import replace

    return [replace(spec, **overrides) for spec in specs]


def _add_feed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", help="declared type for plain lists / CSV (ip, domain, ...)")
    parser.add_argument("--source", help="source name shown in detections")
    parser.add_argument(
        "--level", help="level of every match of these feeds (overrides confidence)"
    )
    parser.add_argument(
        "--ignore-valid-from",
        action="store_true",
        help="retro-hunt: also match events older than an indicator's valid_from",
    )
    parser.add_argument(
        "--include-non-ids",
        action="store_true",
        help="also use MISP attributes not flagged to_ids",
    )
    parser.add_argument(
        "--force-broad",
        action="store_true",
        help="keep 0.0.0.0/0 and ::/0 (refused by default: they match every address)",
    )


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feeds", nargs="+", type=Path, metavar="FEED")
    _add_feed_options(parser)
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--all", action="store_true", help="list every unsupported item")


def _apply_ids(specs: list[FeedSpec], args: argparse.Namespace) -> list[FeedSpec]:
    from dataclasses import replace

    if args.include_non_ids:
        specs = [replace(spec, to_ids_only=False) for spec in specs]
    if args.ignore_valid_from:
        specs = [replace(spec, ignore_valid_from=True) for spec in specs]
    if args.force_broad:
        specs = [replace(spec, force_broad=True) for spec in specs]
    return specs


def _run_check(args: argparse.Namespace) -> int:
    specs = _apply_ids(_specs(args, args.feeds), args)
    index = IndicatorIndex()
    started = time.perf_counter()
    for spec in specs:
        index.load_feed(spec)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({
            "indicators": len(index),
            "by_type": index.counts(),
            "feeds": [
                {"path": r.path, "format": r.format, "source": r.source, "objects": r.objects,
                 "indicators": r.indicators, "observables": r.observables, "by_type": r.by_type,
                 "skipped_not_to_ids": r.skipped_not_for_ids,
                 "skipped_other_types": r.skipped_other_types,
                 "unsupported": [{"reason": w.reason, "detail": w.detail, "line": w.line}
                                 for w in r.unsupported],
                 "notes": [{"reason": w.reason, "detail": w.detail} for w in r.notes]}
                for r in index.reports
            ],
        }, indent=2))  # fmt: skip
        return 0
    console = wide_console()
    table = Table(title=f"{len(index.reports)} feed(s), {len(index):,} indicators indexed")
    for column in ("Feed", "Format", "Source", "Observables by type"):
        table.add_column(column)
    for column in ("Indicators", "Not to_ids", "Other types", "Unsupported"):
        table.add_column(column, justify="right")
    for report in index.reports:
        table.add_row(  # names come from files: escaped, never read as Rich markup
            escape(Path(report.path).name),
            report.format,
            escape(report.source),
            ", ".join(f"{k} {v:,}" for k, v in sorted(report.by_type.items())) or "-",
            f"{report.indicators:,}",
            f"{report.skipped_not_for_ids:,}",
            f"{report.skipped_other_types:,}",
            f"{len(report.unsupported):,}",
        )
    console.print(table)
    console.print(
        "indexed: "
        + (", ".join(f"{k} {v:,}" for k, v in index.counts().items()) or "nothing")
        + f" (loaded in {elapsed:.2f}s)"
    )
    for report in index.reports:
        shown = report.unsupported if args.all else report.unsupported[:20]
        for warning in shown:
            where = (
                f"{Path(report.path).name}:{warning.line}"
                if warning.line
                else Path(report.path).name
            )
            console.print(
                f"[yellow]not used[/] {escape(where)}: {warning.reason}: {escape(warning.detail)}",
                highlight=False,
                soft_wrap=True,
            )
        if len(report.unsupported) > len(shown):
            console.print(f"... {len(report.unsupported) - len(shown)} more (use --all)")
        for warning in report.notes:
            console.print(
                f"[cyan]note[/] {escape(Path(report.path).name)}: {warning.reason}: "
                f"{escape(warning.detail)}",
                highlight=False,
                soft_wrap=True,
            )
    return 0


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="log files or folders")
    parser.add_argument("--intel", action="append", type=Path, required=True, metavar="FEED",
                        help="indicator feed (repeatable)")  # fmt: skip
    _add_feed_options(parser)
    parser.add_argument("--jsonl", action="store_true", help="one JSON detection per line")
    parser.add_argument(
        "--no-cache", action="store_true", help="rebuild the indicator index (no on-disk cache)"
    )
    parser.add_argument(
        "--min-level",
        default="informational",
        choices=LEVELS,
        help="lowest level shown",
    )


def _run_sweep(args: argparse.Namespace) -> int:
    from vedette.events import iso_utc
    from vedette.output.records import detection_json
    from vedette.paths import cache_dir as default_cache_dir
    from vedette.pipeline import Detector
    from vedette.sources import ReadReport, iter_input_files, read_events

    specs = _apply_ids(_specs(args, args.intel), args)
    cache_dir = None if args.no_cache else default_cache_dir()
    index = IndicatorIndex.from_feeds(specs, cache_dir=cache_dir)
    kb = AttackKB.load()
    report = ReadReport()
    files = list(iter_input_files(args.paths))
    if not files:
        raise InputError("no input files found in " + ", ".join(map(str, args.paths)))
    floor = level_rank(args.min_level)
    console = wide_console()
    hits = 0
    rows: list[tuple[datetime | None, tuple[str, ...]]] = []
    table = Table(title="Known-bad indicators seen")
    for column in ("Time", "Host", "Level", "Indicator", "Where"):
        table.add_column(column)
    # The shared stage, as `vedette scan` and the centre use it: indicators only, then ATT&CK.
    detector = Detector(indicators=index, attack_kb=kb)
    for path in files:
        for batch in read_events(path, report=report):
            found = detector.match(batch)
            detections = detector.enrich([d for d in found if level_rank(d.level) >= floor])
            for d in detections:
                hits += 1
                if args.jsonl:
                    # The documented JSONL contract of `vedette scan -f jsonl`.
                    sys.stdout.write(detection_json(d).decode() + "\n")
                    continue
                where = ", ".join(f"{k}={v}" for k, v in d.extra["observed"].items())
                row = (
                    iso_utc(d.event.timestamp) or "",
                    escape(d.event.host or ""),
                    d.level,
                    escape(d.rule_title),
                    escape(where),
                )
                rows.append((d.event.timestamp, row))
    if not args.jsonl:
        # A timeline, like `vedette scan`: events without a time last.
        rows.sort(key=lambda r: (r[0] is None, r[0].timestamp() if r[0] else 0.0))
        for _, cells in rows:
            table.add_row(*cells)
        console.print(table)
        console.print(f"{hits} indicator match(es) in {len(files)} file(s); {len(index):,} "
                      "indicators loaded")  # fmt: skip
    _report_reading(report)
    if not report.events:
        raise InputError("no events could be read from " + ", ".join(map(str, args.paths)))
    return 0


def _report_reading(report: ReadReport) -> None:
    """Events read and what was skipped, on stderr: a clean sweep of unread logs is no all-clear."""
    read = sum(report.events.values())
    skipped = sum(report.skipped.values())
    line = f"{read:,} events read"
    if skipped:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.skipped.items()))
        line += f"; {skipped:,} records or files skipped ({reasons})"
    print(line, file=sys.stderr)
    for warning in report.warnings[:5]:
        where = warning.path + (f":{warning.line}" if warning.line else "")
        print(f"  e.g. {where}: {warning.reason} ({warning.detail})", file=sys.stderr)


def register(registry: CommandRegistry) -> None:
    """Register `vedette intel check|sweep`."""
    registry.group(("intel",), "threat-intelligence indicator feeds")
    registry.add(("intel", "check"), "load feeds and report what was and was not understood",
                 _configure_check, _run_check, CHECK_DESCRIPTION)  # fmt: skip
    registry.add(("intel", "sweep"), "search logs for known-bad indicators only",
                 _configure_sweep, _run_sweep, SWEEP_DESCRIPTION)  # fmt: skip
