"""Correlation throughput and memory, side by side in one run.

  (a) correlator only: synthetic base detections in time order over 50 correlation rules of
      every type (8 types), 1,000 groups; detections/s through ``Correlator.process``;
  (b) engine + correlator: every ``.evtx`` of ``../shared/datasets/evtx-attack-samples`` with the
      full SigmaHQ rule set (``rules``, ``rules-threat-hunting``, ``rules-emerging-threats``) plus
      50 correlation rules built on the base rules that fire most on that data; events/s of
      match alone and of match + time sort + correlation, in turns, best of ``--repeat``;
  (c) memory with 100,000 live groups (``event_count`` and ``value_avg``, one timespan of
      1 h): bytes retained by the correlator (tracemalloc) and RSS growth.

Times are CPU seconds of this process (``time.process_time``), best of ``--repeat`` turns: the
machine is shared by several engineers and wall time mostly measures their load. Figures go to
stdout and ``bench/out/correlate.json``.

    .venv/bin/python bench/bench_correlate.py [--repeat 3] [--skip-engine]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
RULE_FOLDERS = ("rules", "rules-threat-hunting", "rules-emerging-threats")
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "src"))

from vedette.correlate import CorrelationSpec, Correlator, spec_from_mapping  # noqa: E402
from vedette.correlate.references import BaseRule  # noqa: E402
from vedette.events import Detection, Event, SourceRef  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TYPES = (
    ("event_count", {"gte": 20}),
    ("value_count", {"field": "Target", "gte": 8}),
    ("temporal", None),
    ("temporal_ordered", None),
    ("value_sum", {"field": "Bytes", "gte": 50_000}),
    ("value_avg", {"field": "Bytes", "gt": 900}),
    ("value_median", {"field": "Bytes", "gt": 900}),
    ("value_percentile", {"field": "Bytes", "percentile": 95, "gte": 990}),
)


def correlation_doc(
    index: int, kind: str, condition: dict[str, Any] | None, rules: list[str], group_by: str
) -> dict[str, Any]:
    """A correlation rule as a YAML mapping."""
    body: dict[str, Any] = {
        "type": kind,
        "rules": rules,
        "group-by": [group_by],
        "timespan": "10m",
    }
    if condition is not None:
        body["condition"] = condition
    return {
        "title": f"bench correlation {index} ({kind})",
        "name": f"bench_{index}",
        "correlation": body,
    }


# -- (a) correlator only ------------------------------------------------------------------------


def synthetic_specs(base: list[str]) -> list[CorrelationSpec]:
    specs = []
    for index in range(50):
        kind, condition = TYPES[index % len(TYPES)]
        rules = [base[index % len(base)], base[(index + 1) % len(base)]]
        if kind not in ("temporal", "temporal_ordered"):
            rules = rules[:1]
        specs.append(spec_from_mapping(correlation_doc(index, kind, condition, rules, "User")))
    return specs


def synthetic_detections(count: int, base: list[str], groups: int) -> list[Detection]:
    source = SourceRef("bench.jsonl", "jsonl")
    out = []
    for i in range(count):
        event = Event(
            fields={
                "User": f"user{i % groups}",
                "Target": f"t{i % 13}",
                "Bytes": (i * 7919) % 1000,
            },
            timestamp=T0 + timedelta(milliseconds=50 * i),
            source=source,
        )
        out.append(
            Detection(base[i % len(base)], "bench", "low", event, rule_name=base[i % len(base)])
        )
    return out


def bench_correlator_only(repeat: int, count: int) -> dict[str, Any]:
    base = [f"base_rule_{i}" for i in range(10)]
    specs = synthetic_specs(base)
    detections = synthetic_detections(count, base, groups=1000)
    best = best_cpu = float("inf")
    fired = 0
    for _ in range(repeat):
        correlator = Correlator(specs, [BaseRule(name, name) for name in base])
        start, start_cpu = time.perf_counter(), time.process_time()
        found = 0
        for offset in range(0, len(detections), 1000):
            found += len(correlator.process(detections[offset : offset + 1000]))
        found += len(correlator.flush())
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        fired = found
    return {
        "correlation_rules": len(specs),
        "detections": count,
        "groups": 1000,
        "wall_s": round(best, 3),
        "cpu_s": round(best_cpu, 3),
        "detections_per_cpu_s": round(count / best_cpu),
        "correlation_detections": fired,
    }


# -- (b) engine + correlator --------------------------------------------------------------------


def read_attack_samples() -> list[Event]:
    from vedette.sources import ReadReport, read_events

    report = ReadReport()
    events: list[Event] = []
    for path in sorted((DATASETS / "evtx-attack-samples").rglob("*.evtx")):
        for batch in read_events(str(path), report=report):
            events.extend(batch)
    return events


def engine_correlations(events: list[Event], cache: Path) -> tuple[Any, list[str], Counter[str]]:
    from vedette.detect import Engine

    sigma = DATASETS / "sigma"
    folders = [sigma / folder for folder in RULE_FOLDERS]
    engine = Engine.from_paths(folders, cache_dir=cache)
    counts: Counter[str] = Counter(d.rule_id for d in match_all(engine, events))
    top = [rule_id for rule_id, _ in counts.most_common(25)]
    return engine, top, counts


def match_all(engine: Any, events: list[Event]) -> list[Detection]:
    found: list[Detection] = []
    for offset in range(0, len(events), 2000):
        found.extend(engine.match(events[offset : offset + 2000]))
    return found


def bench_engine(repeat: int) -> dict[str, Any]:
    import yaml

    from vedette.detect import Engine

    cache = OUT / "cache-correlate"
    events = read_attack_samples()
    base_engine, top, counts = engine_correlations(events, cache)
    docs = []
    for index in range(50):
        kind, condition = TYPES[index % len(TYPES)]
        if condition is not None and "field" in condition:
            field = "EventID" if kind == "value_count" else "EventRecordID"
            condition = {**condition, "field": field}
            if kind != "value_count":
                condition = {k: v for k, v in condition.items() if k not in ("gt", "gte")}
                condition["gte"] = 1
        elif kind == "event_count":
            condition = {"gte": 5}
        rules = [top[index % len(top)], top[(index + 1) % len(top)]]
        if kind not in ("temporal", "temporal_ordered"):
            rules = rules[:1]
        doc = correlation_doc(index, kind, condition, rules, "Computer")
        doc["correlation"]["generate"] = True
        docs.append(doc)
    with tempfile.TemporaryDirectory() as folder:
        corr_file = Path(folder) / "bench_correlations.yml"
        corr_file.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
        sigma = DATASETS / "sigma"
        engine = Engine.from_paths([*(sigma / f for f in RULE_FOLDERS), corr_file], cache_dir=cache)
    loaded = len(engine.rules)
    best_match = best_both = best_correlate = float("inf")
    clock = time.process_time
    correlated = 0
    warnings: list[str] = []
    for _ in range(repeat):
        start = clock()
        match_all(base_engine, events)
        best_match = min(best_match, clock() - start)

        start = clock()
        correlator = Correlator.from_engine(engine)
        detections = match_all(engine, events)
        detections.sort(key=lambda d: d.event.timestamp or T0)
        correlate_start = clock()
        found = correlator.process(detections) + correlator.flush()
        best_correlate = min(best_correlate, clock() - correlate_start)
        best_both = min(best_both, clock() - start)
        correlated = len(found)
        warnings = [str(w) for w in correlator.warnings][:5]
        assert not correlator.load_errors, correlator.load_errors
        assert len(correlator.rules) == 50
    return {
        "dataset": "evtx-attack-samples (every .evtx)",
        "events": len(events),
        "base_rules": loaded,
        "correlation_rules": 50,
        "base_detections": sum(counts.values()),
        "correlation_detections": correlated,
        "match_cpu_s": round(best_match, 3),
        "match_events_per_cpu_s": round(len(events) / best_match),
        "match_sort_correlate_cpu_s": round(best_both, 3),
        "match_sort_correlate_events_per_cpu_s": round(len(events) / best_both),
        "ratio_with_correlation": round(best_both / best_match, 3),
        "correlate_only_cpu_s": round(best_correlate, 4),
        "warnings_sample": warnings,
    }


# -- (c) memory ---------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def live_group_detections(groups: int) -> Iterator[Detection]:
    source = SourceRef("bench.evtx", "evtx")
    for i in range(groups):
        event = Event(
            fields={"TargetUserName": f"user{i:06d}", "IpAddress": "10.0.0.1", "Bytes": i % 977},
            timestamp=T0 + timedelta(milliseconds=10 * i),
            source=SourceRef(source.path, source.format, record_id=i),
        )
        yield Detection("failed_logon", "Failed logon", "low", event, rule_name="failed_logon")


def memory_spec(kind: str, condition: dict[str, Any]) -> CorrelationSpec:
    return spec_from_mapping(
        {
            "title": f"memory {kind}",
            "correlation": {
                "type": kind,
                "rules": ["failed_logon"],
                "group-by": ["TargetUserName"],
                "timespan": "1h",
                "condition": condition,
            },
        }
    )


def fill(spec: CorrelationSpec, groups: int) -> Correlator:
    """A correlator holding ``groups`` live groups (one detection each, no firing)."""
    correlator = Correlator([spec], [BaseRule("failed_logon", "failed_logon")], max_groups=groups)
    stream = live_group_detections(groups)
    while batch := list(itertools.islice(stream, 1000)):
        correlator.process(batch)
        del batch
    assert correlator.live_groups == groups, correlator.live_groups
    assert not correlator.warnings, correlator.warnings
    return correlator


MEMORY_CASES: dict[str, dict[str, Any]] = {
    "event_count": {"gte": 5},
    "value_avg": {"field": "Bytes", "gt": 5000},
}


def rss_growth(kind: str, groups: int) -> int:
    """RSS growth of a fresh process filling ``groups`` groups (run in a child process)."""
    spec = memory_spec(kind, MEMORY_CASES[kind])
    gc.collect()
    before = rss_bytes()
    correlator = fill(spec, groups)
    gc.collect()
    growth = rss_bytes() - before
    assert correlator.live_groups == groups
    return growth


def bench_memory(groups: int) -> list[dict[str, Any]]:
    """Retained bytes (tracemalloc), and RSS growth measured in a fresh child process."""
    results = []
    for kind, condition in MEMORY_CASES.items():
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", kind, "--groups", str(groups)],
            check=True,
            capture_output=True,
            text=True,
        )
        growth = int(child.stdout.strip())
        gc.collect()
        tracemalloc.start()
        correlator = fill(memory_spec(kind, condition), groups)
        gc.collect()
        retained, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del correlator
        gc.collect()
        results.append(
            {
                "type": kind,
                "live_groups": groups,
                "retained_mib": round(retained / 2**20, 1),
                "bytes_per_group": round(retained / groups),
                "rss_growth_mib": round(growth / 2**20, 1),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=200_000, help="detections for (a)")
    parser.add_argument("--groups", type=int, default=100_000, help="live groups for (c)")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        print(rss_growth(args.rss_child, args.groups))
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    figures["correlator_only"] = bench_correlator_only(args.repeat, args.synthetic)
    print(json.dumps(figures["correlator_only"], indent=2), flush=True)
    figures["memory"] = bench_memory(args.groups)
    print(json.dumps(figures["memory"], indent=2), flush=True)
    if not args.skip_engine:
        figures["engine_plus_correlator"] = bench_engine(args.repeat)
        print(json.dumps(figures["engine_plus_correlator"], indent=2), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "correlate.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
