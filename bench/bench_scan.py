"""Benchmark of the whole `vedette scan` command: wall time and peak memory.

Each case runs ``vedette scan`` as a subprocess (exactly what a user runs) several times and
reports the median wall time and the median peak memory of the process tree (parent plus
workers), sampled from ``/proc`` every 50 ms: the sum of RSS (counts pages the forked workers
share with the parent once per process, so it overstates) and the sum of PSS (shared pages
divided among their sharers: the honest figure).

Cases (the full SigmaHQ Windows rule set: Windows rules of ``rules``, ``rules-threat-hunting``
and ``rules-emerging-threats``, compiled once into a warm cache before timing):

* ``evtx-attack-samples`` at ``--jobs 1`` and ``--jobs 2``;
* the 53,698-event OTRF LSASS campaign file at ``--jobs 1`` and ``--jobs 2``;
* ``evtx-attack-samples`` doubled and quadrupled (every file linked 2x / 4x under distinct
  names in a temporary folder) at ``--jobs 2``: time should grow linearly, memory stay flat.

With ``--noisy``: one rule that fires on *every* event, over the LSASS file 1x, 2x and 4x
(53,698 to 214,792 detections, far past the in-memory limits, so sorted runs are spilled and
merged): memory must stay flat even when the output is as large as the input.

Usage::

    .venv/bin/python bench/bench_scan.py [--runs 3] [--json bench/out/scan.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
VEDETTE = ROOT / ".venv" / "bin" / "vedette"
RULE_FOLDERS = ("rules", "rules-threat-hunting", "rules-emerging-threats")
ATTACK_SAMPLES = DATASETS / "evtx-attack-samples"
LSASS = (
    DATASETS
    / "otrf-security-datasets"
    / "datasets"
    / "compound"
    / "LSASS_campaign_01"
    / "metasploit_logonpasswords_lsass_memory_dump.zip"
)
PAGE = os.sysconf("SC_PAGE_SIZE")
NOISY_RULE = """\
title: Every Windows event (benchmark of very large outputs)
id: 0b0e7c8e-3c1f-4d55-9d7e-6d2b1b7a0f01
status: test
logsource: {product: windows}
detection:
  selection: {EventID|gt: 0}
  condition: selection
level: informational
"""


@dataclass
class Result:
    """Medians of one case."""

    case: str
    jobs: int
    runs: int
    events: int
    detections: int
    wall_seconds: float
    wall_min: float
    wall_max: float
    peak_rss_mib: float
    peak_pss_mib: float
    events_per_second: float
    cpu_seconds: float
    critical_path_seconds: float
    load_average: float


def windows_rule_links(sigma: Path, into: Path) -> int:
    """Link every Windows rule file (product windows, or antivirus) into ``into``."""
    import yaml

    into.mkdir(parents=True, exist_ok=True)
    count = 0
    for folder in RULE_FOLDERS:
        for path in sorted((sigma / folder).rglob("*.yml")):
            with path.open(encoding="utf-8") as handle:
                docs = list(yaml.load_all(handle, Loader=yaml.CSafeLoader))
            if any(
                isinstance(d, dict)
                and isinstance(d.get("logsource"), dict)
                and (
                    d["logsource"].get("product") == "windows"
                    or d["logsource"].get("category") == "antivirus"
                )
                for d in docs
            ):
                count += 1
                (into / f"{count:05d}-{path.name}").symlink_to(path.resolve())
    return count


def repeated_input(source: Path, times: int, into: Path) -> Path:
    """``source``'s files linked ``times`` times under distinct folders (same content)."""
    target = into / f"x{times}"
    for copy in range(times):
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            link = target / f"copy{copy}" / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return target


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _memory(pids: list[int]) -> tuple[int, int]:
    """Sum of RSS and of PSS (bytes) over ``pids``."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                rss += int(statm.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process so far, its children not included."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(args: list[str]) -> tuple[float, int, int, float, float]:
    """Wall seconds, peak tree RSS and PSS (bytes), CPU seconds of the whole tree, and the
    critical path in CPU seconds (the parent's own CPU plus its busiest worker's): what the
    wall time would be on idle cores, a figure the other users of a shared machine do not
    disturb (sampled every 50 ms, so a little low)."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_rss = peak_pss = 0
    cpu_seen: dict[int, float] = {}
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        tree = _tree(process.pid)
        rss, pss = _memory(tree)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        for member in tree:
            cpu_seen[member] = max(cpu_seen.get(member, 0.0), _cpu(member))
        time.sleep(0.05)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(args)}")
    workers = [cpu for member, cpu in cpu_seen.items() if member != process.pid]
    critical = cpu_seen.get(process.pid, 0.0) + max(workers, default=0.0)
    return wall, peak_rss, peak_pss, usage.ru_utime + usage.ru_stime, critical


def bench_case(
    name: str, inputs: list[Path], rules: Path, cache: Path, jobs: int, runs: int, work: Path
) -> Result:
    """Median of ``runs`` runs of one scan."""
    summary = work / "summary.json"
    args = [
        str(VEDETTE), "scan", *map(str, inputs), "--rules", str(rules), "--cache-dir", str(cache),
        "--jobs", str(jobs), "-f", "jsonl", "-o", os.devnull, "--no-summary", "--no-progress",
        "--summary-json", str(summary),
    ]  # fmt: skip
    run_once(args)  # untimed: the page cache and the rule cache are warm for every timed run
    walls, rsss, psss, cpus, paths = [], [], [], [], []
    for _ in range(runs):
        wall, rss, pss, cpu, critical = run_once(args)
        walls.append(wall)
        rsss.append(rss)
        psss.append(pss)
        cpus.append(cpu)
        paths.append(critical)
    data = json.loads(summary.read_text())
    wall = statistics.median(walls)
    return Result(
        case=name,
        jobs=jobs,
        runs=runs,
        events=data["events_read"],
        detections=data["detections"],
        wall_seconds=round(wall, 2),
        wall_min=round(min(walls), 2),
        wall_max=round(max(walls), 2),
        peak_rss_mib=round(statistics.median(rsss) / 2**20, 1),
        peak_pss_mib=round(statistics.median(psss) / 2**20, 1),
        events_per_second=round(data["events_read"] / wall, 1),
        cpu_seconds=round(statistics.median(cpus), 2),
        critical_path_seconds=round(statistics.median(paths), 2),
        load_average=round(os.getloadavg()[0], 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="skip the LSASS and x4 cases")
    parser.add_argument("--noisy", action="store_true", help="only the every-event-rule cases")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vedette-bench-scan-"))
    if options.noisy:
        try:
            return noisy(work, options.runs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    try:
        rules = work / "windows-rules"
        rule_count = windows_rule_links(DATASETS / "sigma", rules)
        cache = work / "cache"
        print(f"rules: {rule_count} SigmaHQ Windows rule files; machine: {os.cpu_count()} cores")
        started = time.perf_counter()
        cold, _, _, _, _ = run_once(
            [str(VEDETTE), "scan", str(ATTACK_SAMPLES / "Execution"), "--rules", str(rules),
             "--cache-dir", str(cache), "-o", os.devnull, "--no-summary", "--no-progress",
             "--jobs", "1"]
        )  # fmt: skip
        print(f"cold start (compile + fill cache, small input): {cold:.1f} s", flush=True)
        del started
        cases: list[tuple[str, list[Path], int]] = [
            ("evtx-attack-samples", [ATTACK_SAMPLES], 1),
            ("evtx-attack-samples", [ATTACK_SAMPLES], 2),
            ("evtx-attack-samples x2", [repeated_input(ATTACK_SAMPLES, 2, work)], 2),
        ]
        if not options.quick:
            cases += [
                ("evtx-attack-samples x4", [repeated_input(ATTACK_SAMPLES, 4, work)], 2),
                ("OTRF LSASS_campaign_01", [LSASS], 1),
                ("OTRF LSASS_campaign_01", [LSASS], 2),
            ]
        results = []
        for name, inputs, jobs in cases:
            result = bench_case(name, inputs, rules, cache, jobs, options.runs, work)
            results.append(result)
            print(json.dumps(asdict(result)), flush=True)
        print_table(results)
        if options.json:
            options.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {"rules": rule_count, "cold_start_seconds": round(cold, 2)}
            payload["results"] = [asdict(r) for r in results]  # type: ignore[assignment]
            options.json.write_text(json.dumps(payload, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[Result]) -> None:
    """The results as a Markdown table."""
    print()
    print(
        "| input | jobs | events | detections | wall s (median, min–max) | events/s | CPU s |"
        " critical path s | peak RSS sum MiB | peak PSS sum MiB | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.case} | {r.jobs} | {r.events:,} | {r.detections:,} | "
            f"{r.wall_seconds} ({r.wall_min}–{r.wall_max}) | {r.events_per_second:,.0f} | "
            f"{r.cpu_seconds} | {r.critical_path_seconds} | {r.peak_rss_mib} | {r.peak_pss_mib} | "
            f"{r.load_average} |"
        )


def noisy(work: Path, runs: int) -> int:
    """One rule firing on every event: output as large as the input, memory still flat."""
    rules = work / "noisy.yml"
    rules.write_text(NOISY_RULE)
    cache = work / "cache"
    results = []
    for times in (1, 2, 4):
        folder = work / f"lsass-x{times}"
        for copy in range(times):
            (folder / f"copy{copy}").mkdir(parents=True)
            (folder / f"copy{copy}" / LSASS.name).symlink_to(LSASS)
        for jobs in (1, 2) if times < 4 else (1,):
            name = f"LSASS x{times}, every-event rule"
            result = bench_case(name, [folder], rules, cache, jobs, runs, work)
            results.append(result)
            print(json.dumps(asdict(result)), flush=True)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
