"""Hyperscan item scanner: compile time, scan-only and full-match throughput, side by side.

Events: every ``.evtx`` of ``../shared/datasets/evtx-attack-samples`` read with
``vedette.sources.read_events``. Rules: SigmaHQ Windows rules (``rules/windows``,
``rules-threat-hunting/windows``, ``rules-emerging-threats``) compiled by ``vedette.detect``.

Measured in one process pinned to one CPU, in CPU seconds (``time.process_time``), best of
``--repeat`` alternating turns:

  * compile: ``HyperscanScanner`` with an empty cache directory (cold) and again from the cache
    it wrote (warm);
  * scan only: ``scanner.decide(events)`` for the Hyperscan scanner and the pure-Python index
    scanner (the fallback when ``hyperscan`` does not import);
  * full match: ``Engine.match`` over 2,000-event batches with ``scanner="hyperscan"`` and
    ``scanner="python"``, plus read + normalise alone for reference;
  * coverage: items decided by the scan vs left to Python, by matcher kind.

The scanner's memo of field values is cleared before every turn, so each turn is a first pass.
With ``--compare REV`` the scan-only turns also run the scanner modules (``hs_*.py``) as they
were at git revision ``REV``, alternating with today's, and check both give the same answers
(on the items of the rules that apply to each event: the others may be decided or not).

    .venv/bin/python bench/bench_scanner.py [--repeat 3] [--compare REV]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vedette.detect import Engine  # noqa: E402
from vedette.detect.hs_scanner import HyperscanScanner  # noqa: E402
from vedette.detect.index import build_python_scanner  # noqa: E402
from vedette.detect.plan import AnyOf, RulePlan  # noqa: E402
from vedette.detect.scanner import SCANNERS  # noqa: E402
from vedette.events import Event  # noqa: E402
from vedette.sources import read_events  # noqa: E402
from vedette.sources.report import ReadReport  # noqa: E402

DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
RULE_FOLDERS = ("rules/windows", "rules-threat-hunting/windows", "rules-emerging-threats")
OUT = ROOT / "bench" / "out"
BATCH = 2000


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of ``fn()`` and its result."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def read_all() -> list[Event]:
    report = ReadReport()
    events: list[Event] = []
    for path in sorted((DATASETS / "evtx-attack-samples").rglob("*.evtx")):
        for batch in read_events(path, report=report):
            events.extend(batch)
    return events


def match_all(engine: Engine, events: list[Event]) -> int:
    found = 0
    for start in range(0, len(events), BATCH):
        found += len(engine.match(events[start : start + BATCH]))
    return found


def scanner_at(rev: str, plan: RulePlan, cache_dir: Path, work: Path) -> Any:
    """A ``HyperscanScanner`` built from the ``hs_*.py`` modules of git revision ``rev``."""
    package = work / "hs_at_rev" / "hs_old"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "src/vedette/detect/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    names = [Path(p).stem for p in listing if Path(p).name.startswith("hs_")]
    for name in names:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:src/vedette/detect/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / f"{name}.py").write_text(source.replace("vedette.detect.hs_", "hs_old.hs_"))
    sys.path.insert(0, str(package.parent))
    saved = dict(SCANNERS)  # the old module registers itself; keep today's registration
    try:
        module = importlib.import_module("hs_old.hs_scanner")
    finally:
        SCANNERS.clear()
        SCANNERS.update(saved)
    return module.HyperscanScanner(plan, cache_dir)


def same_answers(plan: RulePlan, events: list[Event], old: Any, new: Any) -> bool:
    """Whether two scanners agree on every event, on the items of the rules that apply to it
    (a scanner may decide the items of other rules too, or leave them out)."""
    admitted: dict[Any, frozenset[int]] = {}
    for event, left, right in zip(events, old.decide(events), new.decide(events), strict=True):
        items = admitted.get(event.logsource)
        if items is None:
            items = admitted[event.logsource] = plan.items_for(event.logsource)
        if left & items != right & items:
            return False
    return True


def statistics(engine: Engine, events: list[Event]) -> dict[str, Any]:
    """What the scanner and engine do with these events (the counts the design notes cite);
    a benchmark may look at their private parts."""
    scanner = engine.scanner
    assert isinstance(scanner, HyperscanScanner)
    scanner.clear_memo()
    decided = scanner.decide(events)
    memo = scanner._value_memo
    # keyword items: events whose rules have some, and those the prefilter sends on
    keyword_events = exact_keyword_events = 0
    _, _, known = memo.decide(events)
    for event, layout in zip(events, known, strict=True):
        route = scanner._route_of(event.logsource)
        if route.keywords:
            keyword_events += 1
            exact_keyword_events += scanner._keywords_may_match(route, event.fields, layout)
    # engine: rules woken per event, and those the required-items test refuses before the call
    woken = refused = 0
    for event, true in zip(events, decided, strict=True):
        route = engine._routes.get(event.logsource) or engine._route(event.logsource)
        candidates = set(route.always).union(*map(route.item_rules.__getitem__, route.items & true))
        woken += len(candidates)
        for index in candidates:
            needed = engine._required[index]
            refused += needed is not None and not needed <= true
    # command lines: how many distinct ones, and Hyperscan's own time on each
    lines = list(
        dict.fromkeys(
            e.fields["CommandLine"] for e in events if type(e.fields.get("CommandLine")) is str
        )
    )
    number = scanner._resolver.number("CommandLine")
    true_patterns = sum(len(set(scanner._scan_value(number, text))) for text in lines)
    seconds, _ = cpu(lambda: [scanner._scan_value(number, text) for text in lines])
    return {
        "keyword_events": keyword_events,
        "keyword_events_decided_exactly": exact_keyword_events,
        "rules_woken_per_event": woken / len(events),
        "woken_rules_refused_by_required_items": refused / max(1, woken),
        "distinct_command_lines": len(lines),
        "command_line_patterns": len(scanner.patterns.patterns.databases.get((number, 0), [])),
        "true_patterns_per_command_line": true_patterns / max(1, len(lines)),
        "scan_us_per_command_line": seconds * 1e6 / max(1, len(lines)),
    }


def uncovered_kinds(plan: RulePlan, covered: frozenset[int]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for item in plan.items:
        if item.item_id in covered:
            continue
        for matcher in item.matchers:
            inner = matcher.alternatives if isinstance(matcher, AnyOf) else (matcher,)
            kinds.update({type(m).__name__ for m in inner})
    return dict(kinds.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", metavar="REV", help="also time the scanner of git REV")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rules = [DATASETS / "sigma" / folder for folder in RULE_FOLDERS]
    work = Path(tempfile.mkdtemp(prefix="vedette-bench-scanner-"))
    plan_cache = work / "plan"
    base = Engine.from_paths(rules, scanner="none", cache_dir=plan_cache)
    plan = base.plan
    events = read_all()
    print(f"{len(plan.rules)} rules, {len(plan.items)} items, {len(events)} events")

    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "rules": len(plan.rules),
        "items": len(plan.items),
        "events": len(events),
    }
    cold_dir = work / "hs-cold"
    cold, scanner = cpu(lambda: HyperscanScanner(plan, cold_dir))
    warm, _ = cpu(lambda: HyperscanScanner(plan, cold_dir))
    bundle = next(cold_dir.glob("hyperscan-*.bin"))
    patterns = scanner.patterns
    results["compile"] = {
        "cold_cpu_s": cold,
        "warm_cpu_s": warm,
        "patterns": len(patterns.patterns),
        "databases": len(patterns.patterns.databases),
        "bundle_bytes": bundle.stat().st_size,
    }
    results["coverage"] = {
        "covered_items": len(scanner.covered),
        "python_items": len(plan.items) - len(scanner.covered),
        "python_item_kinds": uncovered_kinds(plan, scanner.covered),
    }
    python_scanner = build_python_scanner(plan, None)
    old_scanner = scanner_at(args.compare, plan, work / "hs-old", work) if args.compare else None
    if old_scanner is not None:
        results["compare"] = {
            "rev": args.compare,
            "same_answers": same_answers(plan, events, old_scanner, scanner),
        }
    engines = {
        name: Engine.from_paths(rules, scanner=name, cache_dir=plan_cache)
        for name in ("hyperscan", "python")
    }
    # Warm-up: routes, lazy tables, first-use allocations.
    for engine in engines.values():
        match_all(engine, events[:BATCH])
    timings: dict[str, list[float]] = {}
    detections: dict[str, int] = {}
    true_items = 0
    hs_in_engine = engines["hyperscan"].scanner
    assert isinstance(hs_in_engine, HyperscanScanner)
    for _ in range(args.repeat):
        # Every turn is a first pass over unseen logs: no value remembered from the last turn.
        scanner.clear_memo()
        hs_in_engine.clear_memo()
        turn = {
            "read+normalise": lambda: len(read_all()),
            "scan hyperscan": lambda: scanner.decide(events),
            "scan python": lambda: python_scanner.decide(events),
            "match hyperscan": lambda: match_all(engines["hyperscan"], events),
            "match python": lambda: match_all(engines["python"], events),
        }
        if old_scanner is not None:
            old_scanner.clear_memo()
            turn["scan hyperscan at " + args.compare] = lambda: old_scanner.decide(events)
            # The same scanners again on a warm memo (every value seen once already).
            turn["scan hyperscan, warm memo"] = lambda: scanner.decide(events)
            turn[f"scan hyperscan at {args.compare}, warm memo"] = lambda: old_scanner.decide(
                events
            )
        for name, fn in turn.items():
            seconds, value = cpu(fn)
            timings.setdefault(name, []).append(seconds)
            if name.startswith("match"):
                detections[name] = value
            if name == "scan hyperscan":
                true_items = sum(len(s) for s in value)
    best = {name: min(values) for name, values in timings.items()}
    results["events_per_cpu_s"] = {name: len(events) / s for name, s in best.items()}
    results["turns_cpu_s"] = timings
    results["detections"] = detections
    results["true_covered_items_per_event"] = true_items / len(events)
    results["fallback_events"] = scanner.fallback_events
    ratio = best["match python"] / best["match hyperscan"]
    results["match_speedup"] = ratio
    results["scan_speedup"] = best["scan python"] / best["scan hyperscan"]
    if args.compare:
        results["compare"]["speedup_first_pass"] = (
            best["scan hyperscan at " + args.compare] / best["scan hyperscan"]
        )
        results["compare"]["speedup_warm_memo"] = (
            best[f"scan hyperscan at {args.compare}, warm memo"] / best["scan hyperscan, warm memo"]
        )
    results["statistics"] = statistics(engines["hyperscan"], events)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scanner.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
