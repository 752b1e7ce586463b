"""Readers: events/s of every reader on the shared datasets, and EVTX against the raw parser.

Measures, in one run, best of ``--repeat`` turns (the machine is shared, so turns interleave):

  (a) for each reader, events/s of ``vedette.sources.read_events`` (read, parse, normalise into
      Sigma fields and logsource, batch) over a fixed set of real files from
      ``../shared/datasets``;
  (b) EVTX: the raw ``evtx`` package iterating ``records_json()`` over every ``.evtx`` of
      ``evtx-attack-samples`` against ``read_events`` over the same files, side by side in
      alternating turns, both with the parser's default threads; the ratio is Vedette's
      read-and-normalise throughput over the raw parse (the target is >= 0.7). A third column,
      raw parse + ``orjson.loads`` of each record, shows the ceiling of any JSON-based reader.

    .venv/bin/python bench/bench_readers.py [--repeat 3]

Figures go to stdout and ``bench/out/readers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import evtx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "bench" / "out"

from vedette.sources import ReadReport, read_events  # noqa: E402

OTRF = DATASETS / "otrf-security-datasets" / "datasets"
ZEEK = DATASETS / "misc-logs" / "zeek" / "zed-sample-data"


def corpora() -> dict[str, list[Path]]:
    """Reader name -> the real files it is measured on."""
    return {
        "evtx": sorted((DATASETS / "evtx-attack-samples").rglob("*.evtx")),
        "json (OTRF flat Windows, zipped)": [
            OTRF
            / "compound"
            / "LSASS_campaign_01"
            / "metasploit_logonpasswords_lsass_memory_dump.zip"
        ],
        "json (evtx_dump documents)": sorted(
            (DATASETS / "sigma" / "regression_data").rglob("*.json")
        ),
        "json (Zeek NDJSON, gzip)": sorted((ZEEK / "zeek-json").glob("*.json.gz")),
        "json (Suricata EVE)": [
            DATASETS / "misc-logs" / "suricata" / "elastic-integrations" / "test-eve-small.log",
            *sorted((DATASETS / "misc-logs" / "suricata").rglob("v2/*.json")),
        ],
        "json (CloudTrail, zipped)": sorted((OTRF / "atomic" / "aws").rglob("*exfiltration.zip")),
        "zeek (TSV, gzip)": sorted((ZEEK / "zeek-default").glob("*.log.gz")),
        "syslog": [
            DATASETS / "misc-logs" / "syslog" / "loghub" / name / f"{name}_2k.log"
            for name in ("Linux", "OpenSSH")
        ],
        "apache_error": [DATASETS / "misc-logs" / "syslog" / "loghub" / "Apache" / "Apache_2k.log"],
        "auditd": sorted((DATASETS / "misc-logs" / "auditd").rglob("*.log"))
        + sorted((OTRF / "atomic" / "linux").rglob("*.zip")),
        "csv": [OTRF / "atomic" / "aws" / "discovery" / "aws_s3_honeybucketlogs.zip"],
        "weblog (Apache access log)": [
            DATASETS
            / "evtx-attack-samples"
            / "Command and Control"
            / "web_attack_and_isp_webshell_localhost_access_log.txt"
        ],
        "w3c (IIS)": [
            DATASETS / "evtx-attack-samples" / "Command and Control" / "Tunna_rdp_tunnel_IIS.log"
        ],
    }


def read_all(files: list[Path]) -> tuple[int, ReadReport]:
    """Events read from ``files`` by Vedette, and the report."""
    report = ReadReport()
    count = 0
    for path in files:
        for batch in read_events(path, report=report):
            count += len(batch)
    return count, report


def raw_evtx(files: list[Path]) -> int:
    """Records the ``evtx`` package yields as JSON, doing nothing with them."""
    count = 0
    for path in files:
        for _ in evtx.PyEvtxParser(str(path)).records_json():
            count += 1
    return count


def raw_evtx_loads(files: list[Path]) -> int:
    """Raw parse plus ``orjson.loads`` of each record: the floor of any JSON-based reader."""
    count = 0
    for path in files:
        for record in evtx.PyEvtxParser(str(path)).records_json():
            orjson.loads(record["data"])
            count += 1
    return count


def best_of(repeat: int, action: Callable[[], int]) -> tuple[int, float]:
    """(result, best wall time) of ``repeat`` runs."""
    best = float("inf")
    result = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "readers": {},
    }
    print(f"{'reader (dataset)':38} {'files':>6} {'events':>8} {'skipped':>8} {'events/s':>10}")
    readers: dict[str, object] = {}
    for name, files in corpora().items():
        files = [f for f in files if f.exists()]
        if not files:
            print(f"{name:38} (dataset missing)")
            continue
        times = []
        count, report = 0, ReadReport()
        for _ in range(args.repeat):
            start = time.perf_counter()
            count, report = read_all(files)
            times.append(time.perf_counter() - start)
        rate = count / min(times)
        readers[name] = {
            "files": len(files),
            "events": count,
            "skipped": report.skipped,
            "events_per_s": round(rate),
        }
        print(f"{name:38} {len(files):>6} {count:>8} {report.total_skipped:>8} {rate:>10,.0f}")
    results["readers"] = readers

    files = corpora()["evtx"]
    turns = {"raw": float("inf"), "raw+loads": float("inf"), "vedette": float("inf")}
    counts = {}
    for _ in range(args.repeat):  # alternate so that load changes hit all three alike
        for label, action in (
            ("raw", lambda: raw_evtx(files)),
            ("raw+loads", lambda: raw_evtx_loads(files)),
            ("vedette", lambda: read_all(files)[0]),
        ):
            counts[label], elapsed = best_of(1, action)
            turns[label] = min(turns[label], elapsed)
    assert counts["raw"] == counts["vedette"], counts
    rates = {label: counts[label] / elapsed for label, elapsed in turns.items()}
    ratio = rates["vedette"] / rates["raw"]
    ceiling = rates["raw+loads"] / rates["raw"]
    results["evtx_vs_raw"] = {
        "files": len(files),
        "records": counts["raw"],
        "raw_records_per_s": round(rates["raw"]),
        "raw_plus_orjson_per_s": round(rates["raw+loads"]),
        "vedette_events_per_s": round(rates["vedette"]),
        "ratio": round(ratio, 3),
        "json_ceiling_ratio": round(ceiling, 3),
    }
    print(
        f"\nEVTX, {len(files)} files, {counts['raw']} records: raw evtx {rates['raw']:,.0f}/s, "
        f"raw + orjson.loads {rates['raw+loads']:,.0f}/s ({ceiling:.2f}), "
        f"Vedette read+normalise {rates['vedette']:,.0f}/s: ratio {ratio:.2f}"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "readers.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
