"""`vedette scan`: offline hunting over files and folders of logs.

Exit codes: 0 the scan ran (with or without detections); 1 usage or configuration error;
2 no input could be read; 3 ``--fail-on LEVEL`` and a detection at or above it was output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError
from vedette.events import LEVELS, level_rank
from vedette.intel import AttackKB
from vedette.output.destination import (
    FULL_ERRNOS,
    OutputTarget,
    OutputWriteError,
    guarded,
    os_error_text,
    refuse_inputs,
)
from vedette.output.navigator import TechniqueTally, write_scan_layer
from vedette.output.progress import TerminalProgress, loading_status, wants_progress
from vedette.output.table import TableWriter, make_console
from vedette.output.timeline import DEFAULT_FOLD_SECONDS
from vedette.output.writers import WRITERS, open_writer
from vedette.paths import cache_dir as default_cache_dir
from vedette.pipeline.build import DetectorConfig, WorkerFactory, build_detector
from vedette.pipeline.detector import Detector
from vedette.scan.execute import ScanRequest, execute_scan
from vedette.scan.filters import DetectionFilter
from vedette.scan.runner import Progress
from vedette.scan.sources_input import SourcesInput
from vedette.scan.stats import ScanStats
from vedette.scan.summary import render_summary, write_summary_json
from vedette.sources import READERS

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_NO_INPUT = 2
EXIT_FAIL_ON = 3

RULE_STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
"""The rule statuses of the Sigma specification, for --status."""

FILE_TABLE_WIDTH = 200
"""Width of a table written to a file or a pipe, where there is no terminal to measure."""

DESCRIPTION = """\
Scan files and folders of logs (EVTX, JSON, syslog, auditd, Zeek, Suricata, CSV, CEF; .gz,
.bz2, .zip) with Sigma rules, Sigma correlation rules and threat-intel indicators, and print a
timeline of detections mapped to MITRE ATT&CK, followed by a summary.

Times in logs that carry no zone (syslog, auditd, web and text logs) are taken as UTC, like
--from/--to without an offset; every time shown is UTC.

exit codes: 0 scan ran, 1 usage or configuration error, 2 no input readable,
            3 --fail-on level reached
"""

EPILOG = """\
examples:
  vedette scan ./triage                                   bundled rules, timeline on the terminal
  vedette scan ./triage --rules sigma/rules --min-level high
  vedette scan host1.evtx logs.zip --attack T1059 --from 2024-03-01
  vedette scan ./triage --format jsonl -o detections.jsonl --summary-json summary.json
  vedette scan ./triage --intel feeds/misp.json --navigator layer.json --fail-on high
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    _reject_unknown_options(parser)
    parser.epilog = EPILOG
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path, help="files and folders")

    detect = parser.add_argument_group("detection")
    detect.add_argument(
        "--rules",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="Sigma rule file or folder (repeatable; default: starter pack + installed rule set)",
    )
    detect.add_argument(
        "--intel",
        action="append",
        type=Path,
        default=[],
        metavar="FEED",
        help="indicator feed, repeatable: STIX 2.x bundle, MISP event or feed folder, CSV with a"
        " header, plain list, or YAML feed list (check one with `vedette intel check FEED`)",
    )
    detect.add_argument(
        "--placeholders", type=Path, metavar="FILE", help="YAML values for rule placeholders"
    )
    detect.add_argument(
        "--no-correlation", action="store_true", help="do not evaluate Sigma correlation rules"
    )
    detect.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help=f"compiled-rule cache (default: {default_cache_dir()})",
    )
    detect.add_argument("--no-cache", action="store_true", help="compile rules without the cache")

    filters = parser.add_argument_group("filters (applied to output; correlations see all)")
    filters.add_argument(
        "--min-level",
        choices=LEVELS,
        metavar="LEVEL",
        help=f"lowest level shown ({', '.join(LEVELS)})",
    )
    filters.add_argument(
        "--status",
        action="append",
        default=[],
        choices=RULE_STATUSES,
        metavar="STATUS",
        help=f"rule status to show, repeatable ({', '.join(RULE_STATUSES)})",
    )
    filters.add_argument("--tag", action="append", default=[], help="rule tag or tag prefix")
    filters.add_argument(
        "--attack",
        action="append",
        default=[],
        metavar="ID",
        help="ATT&CK technique (T1059 includes its sub-techniques) or tactic (TA0006,"
        " credential-access or 'Credential Access'), repeatable",
    )
    filters.add_argument(
        "--from",
        dest="time_from",
        metavar="TIME",
        help="ISO 8601 start of the event-time window, inclusive (no offset = UTC; a date = its"
        " midnight)",
    )
    filters.add_argument(
        "--to",
        dest="time_to",
        metavar="TIME",
        help="ISO 8601 end of the window, inclusive (no offset = UTC; a date = the whole day:"
        " --to 2024-03-01 includes 2024-03-01T23:59:59)",
    )
    filters.add_argument(
        "--exclude-rule", action="append", default=[], metavar="ID", help="rule id or name"
    )
    filters.add_argument("--host", action="append", default=[], help="host name (glob)")

    output = parser.add_argument_group("output")
    output.add_argument(
        "-f",
        "--format",
        choices=sorted(WRITERS),
        help="(default: from the -o extension, .jsonl/.ndjson, .json, .csv; else table)",
    )
    output.add_argument("-o", "--output", type=Path, metavar="FILE", help="write detections here")
    output.add_argument("--summary-json", type=Path, metavar="FILE", help="summary as JSON")
    output.add_argument("--navigator", type=Path, metavar="FILE", help="ATT&CK Navigator layer")
    output.add_argument(
        "--no-fold",
        action="store_true",
        help="table: print every repeat (by default the same rules on the same host with the"
        " same key fields, each within --fold-window of the last, make one row with a count)",
    )
    output.add_argument(
        "--fold-window",
        type=float,
        default=DEFAULT_FOLD_SECONDS,
        metavar="SECONDS",
        help=f"table: longest gap between folded repeats (default {DEFAULT_FOLD_SECONDS:g})",
    )
    output.add_argument(
        "--row-per-rule",
        action="store_true",
        help="table: one row per rule match (by default one row per event lists its rules)",
    )
    output.add_argument(
        "--csv-raw",
        action="store_true",
        help="csv: write cells as they are (by default a cell starting with = + - @ gets a"
        " leading ' so a spreadsheet does not run it as a formula)",
    )
    output.add_argument("--no-summary", action="store_true", help="do not print the summary")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument(
        "--fail-on", choices=LEVELS, metavar="LEVEL", help="exit 3 if a detection at this level"
    )

    tuning = parser.add_argument_group("input and performance")
    tuning.add_argument(
        "--input-format",
        metavar="NAME",
        help=f"read every file with this reader, no sniffing ({', '.join(sorted(READERS))})",
    )
    tuning.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=_cores(),
        metavar="N",
        help="worker processes (default: all cores)",
    )
    tuning.add_argument("--temp-dir", type=Path, metavar="DIR", help="where to spill large output")


def _cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _reject_unknown_options(parser: argparse.ArgumentParser) -> None:
    """Unknown options are this command's usage error, reported with its own usage line."""
    parse_known_args = parser.parse_known_args

    def strict(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Otherwise they reach the top-level parser and read as an error of `vedette` itself.
        # Exit status 1 comes from `VedetteArgumentParser.error`, which this parser inherits.
        parsed, extras = parse_known_args(args, namespace)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    setattr(parser, "parse_known_args", strict)  # noqa: B010  (argparse offers no other hook)


FORMAT_BY_SUFFIX: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
}
"""The output format of ``-o FILE`` without ``-f``: a .jsonl file must never hold a text table."""


def _output_format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return str(args.format)
    if args.output is not None:
        return FORMAT_BY_SUFFIX.get(args.output.suffix.lower(), "table")
    return "table"


def _run(args: argparse.Namespace) -> int:
    # SIGTERM from the first moment: a stop during rule loading must not leave a partial output.
    with _stop_on_sigterm():
        return _scan(args)


def _scan(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    args.format = _output_format(args)
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if not args.fold_window >= 0:
        raise ConfigError("--fold-window must be 0 or more seconds")
    detection_filter = DetectionFilter.build(
        min_level=args.min_level,
        statuses=args.status,
        tags=args.tag,
        attack=args.attack,
        time_from=args.time_from,
        time_to=args.time_to,
        exclude_rules=args.exclude_rule,
        hosts=args.host,
    )
    source = _input_source(args)
    _warn_missing_inputs(args.paths)
    for option, target in (
        ("-o", args.output),
        ("--summary-json", args.summary_json),
        ("--navigator", args.navigator),
    ):
        if target is not None and not target.parent.is_dir():
            raise ConfigError(f"{option}: folder {target.parent} does not exist")
        refuse_inputs(option, target, args.paths)
    config = DetectorConfig(
        rule_paths=tuple(args.rules) or tuple(_default_rules()),
        placeholders=args.placeholders,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        intel_feeds=tuple(args.intel),
        correlate=not args.no_correlation,
    )
    with _loading(args):
        detector, facts = build_detector(config)
    if args.exclude_rule and not args.intel:  # indicator ids are not known before matching
        _warn_unknown_exclusions(args.exclude_rule, detector)
    stats = ScanStats(
        rules_loaded=facts.rules_loaded,
        rule_errors=facts.rule_errors,
        correlation_rules=facts.correlation_rules,
        indicators_loaded=facts.indicators,
        notes=list(facts.notes),
        load_seconds=time.perf_counter() - started,
    )
    request = ScanRequest(
        paths=tuple(args.paths),
        jobs=args.jobs,
        filter=detection_filter,
        temp_dir=args.temp_dir,
        own_process=True,
    )
    tally = TechniqueTally()
    with OutputTarget(args.output) as target:
        if target.partial is not None:  # written inside an input folder: not read back
            source = replace(source, exclude=frozenset({os.path.realpath(target.partial)}))
        to_terminal = args.output is None and _isatty(sys.stdout)
        writer = open_writer(
            args.format,
            target.stream,
            color=None if to_terminal else False,
            width=None if to_terminal else FILE_TABLE_WIDTH,
            group=not args.row_per_rule,
            fold_seconds=0.0 if args.no_fold else args.fold_window,
            raw=args.csv_raw,
        )
        with _progress(args) as progress, _spill_errors(args.temp_dir):
            result = execute_scan(
                request,
                detector,
                source,
                sinks=(writer.write, tally),
                stats=stats,
                progress=progress,
                factory=WorkerFactory(config),
                started=started,
            )
        if not result.readable and isinstance(writer, TableWriter):
            writer.empty_message = None  # "No detections." would read as an all-clear
        writer.close()
        target.commit()

    if args.summary_json is not None:
        try:
            write_summary_json(stats, args.summary_json)
        except OSError as exc:
            raise OutputWriteError(
                f"--summary-json: cannot write {args.summary_json}: {os_error_text(exc)}"
            ) from None
    if args.navigator is not None:
        try:
            write_scan_layer(
                tally,
                args.navigator,
                name="vedette scan",
                description="Detections of vedette scan " + " ".join(stats.inputs),
                kb=detector.attack_kb if isinstance(detector.attack_kb, AttackKB) else None,
            )
        except OSError as exc:
            raise OutputWriteError(
                f"--navigator: cannot write {args.navigator}: {os_error_text(exc)}"
            ) from None
    if not args.no_summary:
        render_summary(stats, make_console(_summary_stream(args)))
    _warn_internal_errors(stats)
    if not result.readable:
        # With --no-summary this line is all the responder sees: say why, with the first reasons.
        reasons = "; ".join(str(w) for w in stats.skipped_examples[:3])
        print(
            "vedette: error: no input could be read" + (f": {reasons}" if reasons else ""),
            file=sys.stderr,
        )
        return EXIT_NO_INPUT
    if args.fail_on is not None and any(
        count and level_rank(level) >= level_rank(args.fail_on)
        for level, count in stats.by_level.items()
    ):
        return EXIT_FAIL_ON
    return EXIT_OK


INTERNAL_REASONS = ("internal-error", "worker-died")


def _warn_unknown_exclusions(terms: list[str], detector: Detector) -> None:
    """Say when an --exclude-rule names no loaded rule: a typo would exclude nothing, silently."""
    known: set[str] = set()
    engine = detector.engine
    for rule in getattr(engine, "rules", ()):
        known.update(str(key).lower() for key in (rule.id, rule.name) if key)
    for rule in getattr(engine, "correlation_rules", ()):
        known.update(str(key).lower() for key in (rule.id, rule.name) if key)
    for term in terms:
        if term.strip().lower() not in known:
            print(
                f"vedette: warning: --exclude-rule {term}: no loaded rule has this id or name",
                file=sys.stderr,
            )


def _warn_missing_inputs(paths: list[Path]) -> None:
    """One stderr line per input that does not exist, whatever the summary options.

    A typo in one of several evidence folders must not go unnoticed in a script that runs
    with ``--no-summary`` or writes JSONL to a file; the scan goes on with the rest.
    """
    for path in paths:
        if "!" in str(path) or path.exists():  # 'logs.zip!member' is checked by the reader
            continue
        hint = " (standard input is not read; save it to a file)" if str(path) == "-" else ""
        print(f"vedette: warning: {path}: no such file or folder{hint}", file=sys.stderr)


def _warn_internal_errors(stats: ScanStats) -> None:
    """Say loudly, even with --no-summary, when a bug (not bad input) cost part of the scan."""
    failed = sum(stats.skipped_by_reason.get(reason, 0) for reason in INTERNAL_REASONS)
    if not failed:
        return
    example = next((w for w in stats.skipped_examples if w.reason in INTERNAL_REASONS), None)
    print(
        f"vedette: warning: {failed} input part(s) not scanned because of an internal error"
        + (f", e.g. {example}" if example else "")
        + "; this is a bug in Vedette, please report it",
        file=sys.stderr,
    )


def _default_rules() -> list[Path]:
    from vedette.rulepacks import default_rule_paths

    return default_rule_paths()


def _input_source(args: argparse.Namespace) -> SourcesInput:
    from vedette.sources import READERS

    if args.input_format is not None and args.input_format not in READERS:
        known = ", ".join(sorted(READERS))
        raise ConfigError(f"--input-format: unknown format {args.input_format!r} (known: {known})")
    # With several worker processes the cores are taken; one EVTX parser thread each.
    return SourcesInput(format=args.input_format, threads=0 if args.jobs == 1 else 1)


@contextlib.contextmanager
def _spill_errors(temp_dir: Path | None) -> Iterator[None]:
    """A full temp folder (where large output spills) is said in words, not as a bug."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            raise
        where = temp_dir or Path(tempfile.gettempdir())
        raise OutputWriteError(
            f"cannot spill detections to {where}: {os_error_text(exc)} (choose --temp-dir)"
        ) from None


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the scan like Ctrl-C: workers stopped, temporary files removed."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding application): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _loading(args: argparse.Namespace) -> Iterator[None]:
    if args.no_progress or not wants_progress(sys.stderr):
        yield
        return
    what = "loading rules" if args.no_cache else "loading rules (compiled once, then cached)"
    with loading_status(sys.stderr, what):
        yield


@contextlib.contextmanager
def _progress(args: argparse.Namespace) -> Iterator[Progress | None]:
    if args.no_progress or not wants_progress(sys.stderr):
        yield None
        return
    with TerminalProgress(sys.stderr) as bar:
        yield bar


def _summary_stream(args: argparse.Namespace) -> TextIO:
    # Detections in a machine format on stdout must not be mixed with the human summary.
    if args.output is None and args.format != "table":
        return guarded(sys.stderr, "standard error")
    return guarded(sys.stdout, "standard output")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def register(registry: CommandRegistry) -> None:
    """Register `vedette scan`."""
    registry.add(
        ("scan",),
        "hunt through files and folders of logs with Sigma rules and indicators",
        _configure,
        _run,
        description=DESCRIPTION,
    )
