"""Cost of each output writer on real detections: the table against the JSONL writer.

Scans a folder once (default: the EVTX attack samples with the SigmaHQ Windows rules), keeps
its detections in memory, then times writing all of them with each writer into memory, best
of ``--turns`` alternating turns (CPU time of this process).

    .venv/bin/python bench/bench_table.py [--input DIR] [--rules DIR] [--turns 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from vedette.events import Detection
from vedette.output.writers import open_writer
from vedette.paths import cache_dir
from vedette.pipeline.build import DetectorConfig, build_detector
from vedette.scan.execute import ScanRequest, execute_scan
from vedette.scan.sources_input import SourcesInput

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def detections(inputs: Path, rules: Path) -> list[Detection]:
    detector, _ = build_detector(DetectorConfig(rule_paths=(rules,), cache_dir=cache_dir()))
    found: list[Detection] = []
    execute_scan(
        ScanRequest(paths=(inputs,), jobs=1), detector, SourcesInput(), sinks=(found.append,)
    )
    return found


def write_cost(name: str, items: list[Detection], **options: object) -> tuple[float, int]:
    stream = io.StringIO()
    started = time.process_time()
    writer = open_writer(name, stream, **options)
    for item in items:
        writer.write(item)
    writer.close()
    return time.process_time() - started, len(stream.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DATASETS / "evtx-attack-samples")
    parser.add_argument("--rules", type=Path, default=DATASETS / "sigma" / "rules" / "windows")
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    items = detections(args.input, args.rules)
    variants: dict[str, tuple[str, dict[str, object]]] = {
        "jsonl": ("jsonl", {}),
        "csv": ("csv", {}),
        "table (rows per event, folded)": ("table", {"color": True, "width": 200}),
        "table --no-fold --row-per-rule": (
            "table", {"color": True, "width": 200, "group": False, "fold_seconds": 0.0},
        ),
    }  # fmt: skip
    best: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _ in range(args.turns):
        for label, (name, options) in variants.items():
            cost, size = write_cost(name, items, **options)
            best[label] = min(best.get(label, cost), cost)
            sizes[label] = size
    print(f"{len(items):,} detections from {args.input}")
    print(f"{'writer':34} {'CPU s (best)':>12} {'us/detection':>13} {'bytes':>11}")
    for label in variants:
        print(
            f"{label:34} {best[label]:12.3f} {1e6 * best[label] / max(len(items), 1):13.1f}"
            f" {sizes[label]:11,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
