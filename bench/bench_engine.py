"""Sigma engine throughput, side by side in one run, on one core.

Measures over every ``.evtx`` of ``../shared/datasets/evtx-attack-samples`` with the SigmaHQ
Windows rules of ``rules``, ``rules-threat-hunting`` and ``rules-emerging-threats``:

  (a) parse only: the ``evtx`` package to dicts (``records_json`` + ``orjson.loads``), events/s;
  (b) Vedette read + normalise (``vedette.sources.read_events``), events/s;
  (c) Vedette read + match with the full rule set (``vedette.detect.Engine``), events/s, and
      rule-load time cold (empty cache) and cached;
  (d) pySigma's SQLite backend, the engine inside Zircolite: rules converted to SQL, the same
      flattened events in an in-memory table, every query timed (``bench/engine/sqlite_runner.py``
      in the separate venv ``bench/.venv-sqlite``, created by ``--setup-sqlite``).

(a), (b) and (c) run in turns, ``--repeat`` times, and the best turn of each is reported. Times
are CPU seconds of the process (``time.process_time``, every thread included), which a machine
shared with other jobs inflates far less than wall time; the process is pinned to one CPU, and
so is the SQLite child, which reports its own CPU seconds. Figures go to stdout and
``bench/out/engine.json``.

    .venv/bin/python bench/bench_engine.py --setup-sqlite   # once
    .venv/bin/python bench/bench_engine.py [--repeat 3] [--profile] [--stages] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import evtx
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
RULE_FOLDERS = ("rules", "rules-threat-hunting", "rules-emerging-threats")
SQLITE_VENV = ROOT / "bench" / ".venv-sqlite"
SQLITE_RUNNER = ROOT / "bench" / "engine" / "sqlite_runner.py"
OUT = ROOT / "bench" / "out"


def windows_rule_files(sigma: Path) -> list[Path]:
    """Rule files of the Windows rule set: product windows, or the product-less antivirus rules."""
    found = []
    for folder in RULE_FOLDERS:
        for path in sorted((sigma / folder).rglob("*.yml")):
            with path.open(encoding="utf-8") as handle:
                docs = list(yaml.load_all(handle, Loader=yaml.CSafeLoader))
            for doc in docs:
                logsource = doc.get("logsource") if isinstance(doc, dict) else None
                if isinstance(logsource, dict) and (
                    logsource.get("product") == "windows"
                    or logsource.get("category") == "antivirus"
                ):
                    found.append(path)
                    break
    return found


def pin_to_one_cpu() -> int | None:
    """Pin this process (and children) to one CPU; the CPU, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


# --- (a) parse only ---------------------------------------------------------------------------


def parse_only(files: list[Path]) -> int:
    """Every record of every file to a dict, as the ``evtx`` package gives it; event count."""
    count = 0
    for path in files:
        for record in evtx.PyEvtxParser(str(path), 1).records_json():
            orjson.loads(record["data"])
            count += 1
    return count


# --- (b) and (c): Vedette -------------------------------------------------------------------


def read_normalise(files: list[Path]) -> int:
    """Vedette's EVTX reader: read, flatten and classify every event; event count."""
    from vedette.sources import ReadReport, read_events

    report = ReadReport()
    count = 0
    for path in files:
        for batch in read_events(path, format="evtx", report=report):
            count += len(batch)
    return count


def engine_available() -> bool:
    """True once ``vedette.detect.Engine`` exists (the harness runs (a), (b), (d) before)."""
    try:
        from vedette.detect import Engine  # noqa: F401
    except ImportError:
        return False
    return True


def load_engine(rule_files: list[Path], cache_dir: Path, scanner: str) -> Any:
    from vedette.detect import Engine

    return Engine.from_paths(rule_files, cache_dir=cache_dir, scanner=scanner)


def load_timed(rule_files: list[Path], cache: Path, scanner: str) -> tuple[Any, dict[str, Any]]:
    """The engine loaded twice (empty cache, then cached) and the CPU/wall seconds of each."""
    figures: dict[str, Any] = {}
    for kind in ("cold", "cached"):
        started, wall = time.process_time(), time.perf_counter()
        engine = load_engine(rule_files, cache, scanner)
        figures[f"load_{kind}_seconds"] = time.process_time() - started
        figures[f"load_{kind}_wall_seconds"] = time.perf_counter() - wall
    figures["rules_loaded"] = engine.load_report.loaded
    figures["rule_load_errors"] = len(engine.load_report.errors)
    figures["scanner_class"] = type(engine.scanner).__name__
    return engine, figures


def read_match(files: list[Path], engine: Any) -> int:
    """Read and match every event with the full rule set; event count."""
    return read_then(files, engine.match)


def read_decide(files: list[Path], engine: Any) -> int:
    """Read every event and decide its covered items with the scanner only (no rules run)."""
    return read_then(files, engine.scanner.decide)


def read_then(files: list[Path], action: Callable[[list[Any]], object]) -> int:
    """Read every event, handing each batch to ``action``; event count."""
    from vedette.sources import ReadReport, read_events

    report = ReadReport()
    count = 0
    for path in files:
        for batch in read_events(path, format="evtx", report=report):
            count += len(batch)
            action(batch)
    return count


def forget_values(engine: Any) -> None:
    """Empty the scanner's memo of values already scanned, so that no turn of (c) is helped by
    the values of the turn before (a real scan meets each file once)."""
    clear = getattr(getattr(engine, "scanner", None), "clear_memo", None)
    if clear is not None:
        clear()


def timed(function: Callable[[], int]) -> tuple[int, float]:
    """Events counted and CPU seconds of this process (all its threads) taken."""
    started = time.process_time()
    count = function()
    return count, time.process_time() - started


# --- (d) SQLite backend -----------------------------------------------------------------------


def setup_sqlite_venv() -> None:
    """Create bench/.venv-sqlite with pySigma's SQLite backend (its own pySigma)."""
    subprocess.run([sys.executable, "-m", "venv", str(SQLITE_VENV)], check=True)
    pip = SQLITE_VENV / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", "pysigma-backend-sqlite"], check=True)


def reference_pass(files: list[Path], engine: Any) -> tuple[list[Any], dict[str, set[int]]]:
    """Every event (in file order) and, per rule id, the indices of the events it fired on."""
    from vedette.sources import ReadReport, read_events

    report = ReadReport()
    events: list[Any] = []
    fired: dict[str, set[int]] = {}
    for path in files:
        for batch in read_events(path, format="evtx", report=report):
            position = {id(event): len(events) + i for i, event in enumerate(batch)}
            events.extend(batch)
            for detection in engine.match(batch) if engine is not None else ():
                fired.setdefault(detection.rule_id.lower(), set()).add(
                    position[id(detection.event)]
                )
    return events, fired


def agreement(
    events: list[Any], vedette: dict[str, set[int]], sqlite: dict[str, list[int]], engine: Any
) -> dict[str, Any]:
    """Compare, rule by rule, the events each engine fired on.

    The SQLite path runs every rule on every event (no logsource routing, as Zircolite's
    generic rulesets); its hits are first restricted to the events the rule's logsource admits,
    so what remains to compare is detection semantics alone.
    """
    rules = {info.id.lower(): info for info in engine.rules}
    compared = agreeing = 0
    disagreements = []
    for rule_id in sorted(set(vedette) | {r.lower() for r in sqlite}):
        info = rules.get(rule_id)
        if info is None:
            continue
        routed = {i for i in sqlite.get(rule_id, ()) if info.logsource.admits(events[i].logsource)}
        ours = vedette.get(rule_id, set())
        compared += 1
        if routed == ours:
            agreeing += 1
            continue
        disagreements.append(
            {
                "rule": info.path,
                "sqlite_only": sorted(routed - ours)[:5],
                "vedette_only": sorted(ours - routed)[:5],
                "sqlite_only_count": len(routed - ours),
                "vedette_only_count": len(ours - routed),
            }
        )
    return {"rules_compared": compared, "rules_agree": agreeing, "disagreements": disagreements}


def run_sqlite(rule_files: list[Path], events: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    rules_list = work / "rules.txt"
    rules_list.write_text("\n".join(str(p) for p in rule_files), encoding="utf-8")
    events_file = work / "events.jsonl"
    with events_file.open("wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event, default=str) + b"\n")
    python = SQLITE_VENV / "bin" / "python"
    command = [str(python), str(SQLITE_RUNNER), "--rules", str(rules_list)]
    command += ["--events", str(events_file)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"SQLite runner failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- report -----------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def profile_match(files: list[Path], engine: Any, top: int) -> str:
    forget_values(engine)
    profiler = cProfile.Profile()
    profiler.enable()
    read_match(files, engine)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--samples", type=Path, default=DATASETS / "evtx-attack-samples")
    parser.add_argument("--sigma", type=Path, default=DATASETS / "sigma")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print where (c)'s time goes")
    parser.add_argument("--top", type=int, default=30, help="profile entries to print")
    parser.add_argument(
        "--scanners",
        default="auto",
        help="comma-separated item scanners to time for (c), first one reported as (c):"
        " auto, hyperscan, python",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also time read + scanner only and (c) with a warm value memo, to split (c)",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--setup-sqlite", action="store_true", help="create the SQLite venv")
    args = parser.parse_args()

    if args.setup_sqlite:
        setup_sqlite_venv()
        return 0
    cpu = pin_to_one_cpu()
    files = sorted(args.samples.rglob("*.evtx"))
    rule_files = windows_rule_files(args.sigma)
    print(f"dataset: {args.samples} ({len(files)} files)")
    print(f"rules:   {len(rule_files)} Windows rule files from {', '.join(RULE_FOLDERS)}")
    print(f"machine: {machine()}; pinned to CPU {cpu}")

    results: dict[str, Any] = {"files": len(files), "rule_files": len(rule_files)}
    results["machine"] = machine()
    parse_only(files)  # warm the page cache
    turns: dict[str, list[tuple[int, float]]] = {"a": [], "b": []}
    engines: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vedette-bench-") as work_dir:
        work = Path(work_dir)
        if engine_available():
            results["scanners"] = {}
            for name in args.scanners.split(","):
                engines[name], figures = load_timed(rule_files, work / f"cache-{name}", name)
                results["scanners"][name] = figures
                turns[f"c:{name}"] = []
        # As `vedette scan` does once its rules are loaded: the long-lived rule objects leave
        # the garbage collector's generations, so its collections during the run skip them.
        gc.collect()
        gc.freeze()
        for _ in range(args.repeat):
            turns["a"].append(timed(lambda: parse_only(files)))
            turns["b"].append(timed(lambda: read_normalise(files)))
            for name, each in engines.items():
                forget_values(each)
                turns[f"c:{name}"].append(timed(lambda each=each: read_match(files, each)))
            if args.stages and engines:
                staged = next(iter(engines.values()))
                # (c) again with every value remembered from the turn before: no learning
                warm = timed(lambda staged=staged: read_match(files, staged))
                turns.setdefault("warm", []).append(warm)
                forget_values(staged)
                scan = timed(lambda staged=staged: read_decide(files, staged))
                turns.setdefault("scan", []).append(scan)
        for key, runs in turns.items():
            if runs:
                events, seconds = min(runs, key=lambda run: run[1])
                results[f"{key}_events"] = events
                results[f"{key}_seconds"] = seconds
                results[f"{key}_events_per_s"] = events / seconds
        engine = next(iter(engines.values()), None)
        if engine is not None:
            first = next(iter(engines))
            results.update(results["scanners"][first])
            results["c_events_per_s"] = results[f"c:{first}_events_per_s"]
        events, fired = reference_pass(files, engine)
        if engine is not None:
            results["vedette_detections"] = sum(len(hits) for hits in fired.values())
            results["vedette_rules_fired"] = len(fired)
        if not args.skip_sqlite and (SQLITE_VENV / "bin" / "python").exists():
            sqlite = run_sqlite(rule_files, [event.fields for event in events], work)
            matches = {rule_id.lower(): rows for rule_id, rows in sqlite.pop("matches").items()}
            results["sqlite"] = sqlite
            results["sqlite"]["detections"] = sum(len(rows) for rows in matches.values())
            results["sqlite"]["rules_fired"] = len(matches)
            results["d_events_per_s"] = sqlite["events"] / sqlite["query_seconds"]
            if engine is not None:
                results["agreement"] = agreement(events, fired, matches, engine)
        if args.profile and engine is not None:
            print(profile_match(files, engine, args.top))

    print_summary(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "engine.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def print_summary(results: dict[str, Any]) -> None:
    def rate(key: str) -> str:
        value = results.get(f"{key}_events_per_s")
        return f"{value:>10,.0f} events/CPU-s" if value else "       n/a"

    print(f"(a) parse only (evtx -> dicts)    {rate('a')}  ({results.get('a_events')} events)")
    print(f"(b) Vedette read + normalise      {rate('b')}")
    print(f"(c) Vedette read + match, full    {rate('c')}")
    for name, figures in results.get("scanners", {}).items():
        print(
            f"    scanner {name} ({figures['scanner_class']}):"
            f" {results[f'c:{name}_events_per_s']:,.0f} events/CPU-s;"
            f" load cold {figures['load_cold_seconds']:.1f} CPU-s"
            f" ({figures['load_cold_wall_seconds']:.1f} s wall),"
            f" cached {figures['load_cached_seconds']:.2f} CPU-s"
        )
    if "load_cold_seconds" in results:
        print(
            f"    rules loaded {results['rules_loaded']} ({results['rule_load_errors']} not loaded)"
            f"; load cold {results['load_cold_seconds']:.2f} CPU-s, cached"
            f" {results['load_cached_seconds']:.2f} CPU-s"
        )
        print(
            f"    detections {results.get('vedette_detections')}"
            f" from {results.get('vedette_rules_fired')} rules"
        )
    if "sqlite" in results:
        s = results["sqlite"]
        print(
            f"(d) pySigma SQLite backend        {rate('d')}  (queries only: {s['queries']} queries"
            f" from {s['rules_converted']} converted rules, {s['query_seconds']:.1f} s;"
            f" convert {s['convert_seconds']:.1f} s, load {s['load_seconds']:.1f} s)"
        )
        print(
            f"    not converted: {s['conversion_errors']}; detections {s['detections']}"
            f" from {s['rules_fired']} rules"
        )
    if "agreement" in results:
        agreed = results["agreement"]
        print(
            f"    semantics: {agreed['rules_agree']} of {agreed['rules_compared']} rules fire on"
            " exactly the same events in Vedette and the SQLite backend (after routing)"
        )
        for row in agreed["disagreements"]:
            print(
                f"      differs: {row['rule']}: SQLite only {row['sqlite_only_count']},"
                f" Vedette only {row['vedette_only_count']}"
            )
    if "scan_seconds" in results and "c_events_per_s" in results:
        per = {k: results[f"{k}_seconds"] / results[f"{k}_events"] * 1e6 for k in "ab"}
        per["scan"] = results["scan_seconds"] / results["scan_events"] * 1e6
        per["warm"] = results["warm_seconds"] / results["warm_events"] * 1e6
        per["c"] = 1e6 / results["c_events_per_s"]
        stages = {
            "parse (a)": per["a"],
            "flatten, classify, Event objects: (b) - (a)": per["b"] - per["a"],
            "scanner, first pass: (read + scanner) - (b)": per["scan"] - per["b"],
            "engine (routing, conditions, detections): (c) - (read + scanner)": (
                per["c"] - per["scan"]
            ),
            "of which learning new values: (c) - (c, memo warm)": per["c"] - per["warm"],
        }
        results["stages_us_per_event"] = stages
        print("where (c)'s time goes, CPU us per event (best turns, differences):")
        for label, value in stages.items():
            print(f"    {value:6.1f}  {label}")
    a, c, d = (results.get(f"{k}_events_per_s") for k in "acd")
    if a and c:
        print(f"ratio (c)/(a) = {c / a:.2f}  (target >= 0.33, aim 0.5)")
    if c and d:
        print(f"ratio (c)/(d) = {c / d:.1f}x  (target >= 20x)")


if __name__ == "__main__":
    raise SystemExit(main())
