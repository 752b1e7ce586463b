"""`vedette scan` of this tree against the same command at another git revision, side by side.

For each dataset folder, both trees scan it with the same rules (``vedette scan DIR --rules ...
-f jsonl --jobs 1``, each tree with its own warm rule cache), in alternating turns; the report
gives the CPU seconds (user + system of the child, best turn) of each and whether the two found
the same detections (rule id, source, matched selections, timestamp; the event bodies may differ
when a reader changed its field names).

    .venv/bin/python bench/bench_scan_compare.py --rev ebaa7ba [--turns 3] [--rules DIR ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
FOLDERS = ("evtx-attack-samples", "otrf-security-datasets", "misc-logs")
RULES = ("rules", "rules-threat-hunting", "rules-emerging-threats")


def scan(src: Path, home: Path, folder: Path, rules: list[Path], out: Path) -> float:
    """CPU seconds of one ``vedette scan`` run with the package at ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src), VEDETTE_HOME=str(home))
    command = [sys.executable, "-m", "vedette", "scan", str(folder), "-f", "jsonl", "-o", str(out)]
    for path in rules:
        command += ["--rules", str(path)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([*command, "--jobs", "1"], env=env, check=False, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def detections(path: Path) -> collections.Counter[tuple[object, ...]]:
    found: collections.Counter[tuple[object, ...]] = collections.Counter()
    with path.open("rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            source = orjson.dumps(row.get("source"))
            found[row["rule_id"], source, tuple(row.get("matched") or ()), row["timestamp"]] += 1
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", required=True, help="git revision to compare with")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rules", type=Path, nargs="*", default=None)
    args = parser.parse_args()
    rules = args.rules or [DATASETS / "sigma" / name for name in RULES]
    work = Path(tempfile.mkdtemp(prefix="vedette-scan-compare-"))
    old = work / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    trees = {args.rev: old / "src", "this tree": ROOT / "src"}
    print(f"rules: {', '.join(str(r) for r in rules)}; {args.turns} turns, best CPU s")
    for name in FOLDERS:
        folder = DATASETS / name
        cpu: dict[str, list[float]] = {tree: [] for tree in trees}
        outputs = {tree: work / f"{name}-{index}.jsonl" for index, tree in enumerate(trees)}
        for tree, src in trees.items():  # untimed: fills each tree's rule cache
            scan(src, work / f"home-{hash(tree)}", folder, rules, outputs[tree])
        for _ in range(args.turns):
            for tree, src in trees.items():
                home = work / f"home-{hash(tree)}"
                cpu[tree].append(scan(src, home, folder, rules, outputs[tree]))
        found = {tree: detections(path) for tree, path in outputs.items()}
        left, right = found.values()
        same = "same detections" if left == right else "DIFFERENT detections"
        figures = ", ".join(f"{tree} {min(times):.2f}" for tree, times in cpu.items())
        print(f"{name}: {figures} CPU s; {sum(right.values())} detections, {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
