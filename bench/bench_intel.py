"""Threat-intel index: build time and memory for 1,000,000 indicators, and matching cost.

Measures, in one run on one core:

  (a) building an :class:`~vedette.intel.IndicatorIndex` from a 1,000,000-line CSV feed of
      synthetic indicators (mixed: IPv4, IPv4 networks, IPv6, domains, URLs, MD5, SHA-1,
      SHA-256), plus 200 indicators planted from values that occur in the events so that the
      match path really produces detections: wall time, RSS growth and (separate pass,
      ``--tracemalloc``) Python heap current/peak;
  (b) ``index.match`` alone over real events (every ``.evtx`` of
      ``../shared/datasets/evtx-attack-samples`` read with ``vedette.sources``), events/s, with
      the index's memo of values already seen warm and cold (one pass over unseen logs);
  (c) the Sigma engine (``vedette.detect.Engine``, SigmaHQ ``rules/windows``) alone and engine +
      indicator index, side by side in turns, best of ``--repeat``: the ratio is what intel
      costs a scan (the index's memo is emptied first: a scan is one pass). Matching is
      timed in CPU seconds of this single-threaded process, so that other jobs on the shared
      machine do not distort the ratio.

    .venv/bin/python bench/bench_intel.py [--indicators 1000000] [--repeat 3] [--tracemalloc]
        [--planted 200]   # 0: no indicator occurs in the events (the common case)

Figures go to stdout and ``bench/out/intel.json``.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import pickle
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "bench" / "out"

from vedette.events import Event  # noqa: E402
from vedette.intel import FeedSpec, IndicatorIndex  # noqa: E402

MIX = (  # (type, share)
    ("ipv4", 0.30), ("cidr4", 0.05), ("ipv6", 0.05), ("domain", 0.25), ("url", 0.10),
    ("md5", 0.10), ("sha1", 0.05), ("sha256", 0.10),
)  # fmt: skip
WORDS = ("update", "cdn", "login", "secure", "mail", "files", "api", "static", "portal", "sync")
TLDS = ("com", "net", "org", "info", "xyz", "top", "ru", "cn", "io", "biz")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def synthetic_value(kind: str, rng: random.Random) -> tuple[str, str]:
    if kind == "ipv4":
        return "ip", ".".join(str(rng.randrange(1, 255)) for _ in range(4))
    if kind == "cidr4":
        prefix = rng.choice((16, 20, 24, 24, 24, 28))
        address = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1)
        octets = ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0))
        return "ip", f"{octets}/{prefix}"
    if kind == "ipv6":
        return "ip", "2001:db8:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
    if kind == "domain":
        return "domain", f"{rng.choice(WORDS)}{rng.getrandbits(40):x}.{rng.choice(TLDS)}"
    if kind == "url":
        host = f"{rng.choice(WORDS)}{rng.getrandbits(32):x}.{rng.choice(TLDS)}"
        return "url", f"http://{host}/{rng.choice(WORDS)}/{rng.getrandbits(48):x}.php"
    bits = {"md5": 128, "sha1": 160, "sha256": 256}[kind]
    return kind, f"{rng.getrandbits(bits):0{bits // 4}x}"


def planted_values(events: list[Event], count: int) -> list[tuple[str, str]]:
    """Observables that really occur in the events (addresses, names, hashes)."""
    found: dict[tuple[str, str], None] = {}
    for event in events:
        fields = event.fields
        for name, kind in (("DestinationIp", "ip"), ("SourceIp", "ip"), ("IpAddress", "ip"),
                           ("QueryName", "domain"), ("DestinationHostname", "domain")):  # fmt: skip
            value = fields.get(name)
            if not isinstance(value, str) or value in ("-", ""):
                continue
            if kind == "ip":
                try:  # a feed lists public addresses, not the victim's own network
                    if not ipaddress.ip_address(value.strip("[]")).is_global:
                        continue
                except ValueError:
                    continue
            found[(kind, value.strip("[]"))] = None
        hashes = fields.get("Hashes")
        if isinstance(hashes, str):
            for part in hashes.split(","):
                algo, _, digest = part.partition("=")
                if algo.upper() in ("MD5", "SHA1", "SHA256"):
                    found[(algo.lower(), digest)] = None
    return list(found)[:count]


def write_feed(path: Path, total: int, planted: list[tuple[str, str]], seed: int) -> None:
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    with path.open("w", encoding="ascii") as handle:
        handle.write("type,value\n")
        for kind, value in planted:
            handle.write(f"{kind},{value}\n")
        for kind in rng.choices(kinds, weights, k=total - len(planted)):
            handle.write("{},{}\n".format(*synthetic_value(kind, rng)))


def load_events() -> list[Event]:
    from vedette.sources import ReadReport, iter_input_files, read_events

    report = ReadReport()
    events: list[Event] = []
    for path in iter_input_files([DATASETS / "evtx-attack-samples"]):
        for batch in read_events(path, report=report):
            events.extend(batch)
    return events


def build(feed: Path) -> tuple[IndicatorIndex, float, int]:
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    cpu = time.process_time()
    index = IndicatorIndex()
    index.load_feed(FeedSpec(feed, format="csv", source="synthetic"))
    elapsed = time.perf_counter() - started
    print(f"    build CPU time {time.process_time() - cpu:.1f} s")
    gc.collect()
    return index, elapsed, rss_bytes() - before


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    """CPU seconds of ``fn`` (this process only: other jobs on the shared machine do not count)."""
    started = time.process_time()
    result = fn(*args)
    return time.process_time() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rules", type=Path, default=DATASETS / "sigma" / "rules" / "windows")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-engine", action="store_true", help="build and memory only")
    parser.add_argument(
        "--planted", type=int, default=200, help="indicators taken from the events (hits)"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    events = load_events()
    print(f"events: {len(events):,} from evtx-attack-samples")
    planted = planted_values(events, args.planted)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}",
        "events": len(events),
        "indicators": args.indicators,
        "planted": len(planted),
    }

    with tempfile.TemporaryDirectory() as tmp:
        feed = Path(tmp) / "synthetic.csv"
        write_feed(feed, args.indicators, planted, args.seed)
        results["feed_bytes"] = feed.stat().st_size
        index, build_s, rss_growth = build(feed)
        print(f"(a) build {len(index):,} indicators from a {feed.stat().st_size / 1e6:.0f} MB "
              f"CSV: {build_s:.1f} s ({len(index) / build_s:,.0f}/s), "
              f"RSS +{rss_growth / 2**20:.0f} MiB "
              f"({rss_growth / max(len(index), 1):.0f} B/indicator)")  # fmt: skip
        print(f"    by type: {index.counts()}")
        results.update(build_seconds=round(build_s, 2), rss_growth_mib=round(rss_growth / 2**20),
                       indexed=len(index), by_type=index.counts())  # fmt: skip
        started = time.process_time()
        pickled = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
        dump_s = time.process_time() - started
        started = time.process_time()
        pickle.loads(pickled)
        load_s = time.process_time() - started
        print(f"    cache (pickle): {len(pickled) / 1e6:.0f} MB, written in {dump_s:.2f} s CPU, "
              f"loaded in {load_s:.2f} s CPU")  # fmt: skip
        results.update(cache_mb=round(len(pickled) / 1e6), cache_dump_cpu_s=round(dump_s, 2),
                       cache_load_cpu_s=round(load_s, 2))  # fmt: skip
        del pickled
        if args.tracemalloc:
            del index
            gc.collect()
            tracemalloc.start()
            traced = IndicatorIndex()
            traced.load_feed(FeedSpec(feed, format="csv", source="synthetic"))
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"    tracemalloc: heap {current / 2**20:.0f} MiB after build, "
                  f"peak {peak / 2**20:.0f} MiB")  # fmt: skip
            results.update(heap_mib=round(current / 2**20), heap_peak_mib=round(peak / 2**20))
            index = traced

    if args.skip_engine:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "intel.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0
    from vedette.detect import Engine

    started = time.perf_counter()
    engine = Engine.from_paths([args.rules], cache_dir=OUT / "intel-rule-cache")
    print(f"rules: {len(engine.rules):,} from {args.rules} "
          f"(loaded in {time.perf_counter() - started:.1f} s)")  # fmt: skip
    results["rules"] = len(engine.rules)

    def engine_only() -> int:
        return len(engine.match(events))

    def engine_and_intel() -> int:
        index._memo.clear()  # a scan is one pass: the memo starts empty
        return len(engine.match(events)) + len(index.match(events))

    def intel_only() -> int:
        return len(index.match(events))

    def intel_cold() -> int:
        index._memo.clear()  # what one pass over unseen logs costs, before values repeat
        return len(index.match(events))

    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    ratios: list[float] = []
    for _ in range(args.repeat):
        turn: dict[str, float] = {}
        for name, fn in (("engine", engine_only), ("engine+intel", engine_and_intel),
                         ("intel", intel_only), ("intel, cold", intel_cold)):  # fmt: skip
            seconds, count = timed(fn)
            turn[name] = seconds
            best[name] = min(best.get(name, seconds), seconds)
            counts[name] = count
        ratios.append(turn["engine+intel"] / turn["engine"])
    for name, seconds in best.items():
        rate = len(events) / seconds
        print(f"    {name:13s} {rate:>10,.0f} events/s  ({counts[name]:,} detections)")
    ratio = sorted(ratios)[len(ratios) // 2]
    additive = (best["engine"] + best["intel, cold"]) / best["engine"]
    print(
        f"(c) engine+intel / engine time: median of turns {ratio:.3f} "
        f"(turns: {', '.join(f'{r:.2f}' for r in ratios)}); from best times "
        f"(engine + intel, cold) / engine = {additive:.3f}; intel detections: {counts['intel']:,}"
    )
    results.update(
        events_per_s={k: round(len(events) / v) for k, v in best.items()},
        detections=counts,
        ratio_engine_intel_to_engine=round(ratio, 3),
        ratio_turns=[round(r, 3) for r in ratios],
        ratio_from_best_times=round(additive, 3),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "intel.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
