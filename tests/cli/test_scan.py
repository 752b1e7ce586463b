"""`vedette scan` driven in-process on the shared attack samples with real SigmaHQ rules."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from datasets import dataset
from vedette.cli.main import main
from vedette.output.jsonschema_lite import validate
from vedette.rulepacks.paths import starter_pack_dir

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "scan-detection.schema.json"
COMSVCS_ID = "646ea171-dded-4578-8a4d-65e9822892e3"  # Process Memory Dump Via Comsvcs.DLL
WMIPRVSE_ID = "d21374ff-f574-44a7-9998-4a8c8bf33d7d"  # WmiPrvSE Spawned A Process
RECORD = 32154  # the rundll32 comsvcs.dll MiniDump process creation in the sample


@pytest.fixture(scope="module")
def sample() -> Path:
    return dataset(
        "evtx-attack-samples", "Credential Access", "sysmon_10_1_memdump_comsvcs_minidump.evtx"
    )


@pytest.fixture(scope="module")
def rules() -> list[str]:
    folder = dataset("sigma", "rules", "windows", "process_creation")
    args = []
    for name in (
        "proc_creation_win_rundll32_process_dump_via_comsvcs.yml",
        "proc_creation_win_wmiprvse_spawning_process.yml",
    ):
        args += ["--rules", str(folder / name)]
    return args


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return ["--cache-dir", str(tmp_path_factory.mktemp("cache"))]


def scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["scan", "--no-progress", *args])
    except SystemExit as exc:  # argparse ends usage errors this way
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_known_detections_in_jsonl_validate_against_the_contract(
    capsys: pytest.CaptureFixture[str], sample: Path, rules: list[str], cache: list[str]
) -> None:
    code, out, err = scan(capsys, str(sample), *rules, *cache, "-f", "jsonl", "-j", "1")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    schema = json.loads(SCHEMA.read_text("utf-8"))
    for record in records:
        assert validate(record, schema) == []
    found = {(r["rule_id"], r["source"]["record_id"]) for r in records}
    assert found == {(COMSVCS_ID, RECORD), (WMIPRVSE_ID, RECORD)}
    comsvcs = next(r for r in records if r["rule_id"] == COMSVCS_ID)
    assert comsvcs["timestamp"] == "2019-08-30T12:54:08.354049Z"
    assert comsvcs["level"] == "high" and comsvcs["host"] == "MSEDGEWIN10"
    assert "T1003.001" in {a["id"] for a in comsvcs["attack"]}
    lsass = next(a for a in comsvcs["attack"] if a["id"] == "T1003.001")
    assert lsass["name"] == "LSASS Memory" and lsass["tactics"] == ["credential-access"]
    assert comsvcs["matched"] and comsvcs["event"]["Image"].lower().endswith("rundll32.exe")
    assert "events from 1 file in" in err  # the human summary goes to stderr


def test_every_format_carries_the_known_detections(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    rules: list[str],
    cache: list[str],
    tmp_path: Path,
) -> None:
    outputs = {}
    for fmt in ("table", "csv", "json", "jsonl"):
        target = tmp_path / f"out.{fmt}"
        code, _, _ = scan(
            capsys, str(sample), *rules, *cache, "-f", fmt, "-o", str(target), "--no-summary"
        )
        assert code == 0
        outputs[fmt] = target.read_text("utf-8")
    table = outputs["table"]
    assert "Process Memory Dump Via Comsvcs.DLL" in table and "WmiPrvSE Spawned A Process" in table
    assert "2019-08-30 12:54:08" in table and "MSEDGEWIN10" in table and "comsvcs.dll" in table
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert {(r["rule_id"], r["record_id"]) for r in rows} == {
        (COMSVCS_ID, str(RECORD)),
        (WMIPRVSE_ID, str(RECORD)),
    }
    as_json = json.loads(outputs["json"])
    as_jsonl = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert as_json == as_jsonl and len(as_json) == 2


def test_one_and_two_jobs_give_identical_output_over_a_folder(
    capsys: pytest.CaptureFixture[str], cache: list[str]
) -> None:
    folder = dataset("evtx-attack-samples", "Credential Access")
    runs = {}
    starter = ["--rules", str(starter_pack_dir())]  # rules and correlation rules
    for jobs in ("1", "2"):
        code, out, err = scan(
            capsys, str(folder), *starter, *cache, "-f", "jsonl", "-j", jobs, "--no-summary"
        )
        assert code == 0, err
        runs[jobs] = out
    assert runs["1"] == runs["2"]
    stamps = [json.loads(line)["timestamp"] for line in runs["1"].splitlines()]
    assert len(stamps) >= 2 and stamps == sorted(stamps)


def test_without_rules_the_starter_pack_and_the_installed_set_are_used(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    cache: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))  # nothing installed
    summary = tmp_path / "summary.json"
    code, out, err = scan(
        capsys, str(sample), *cache, "-f", "jsonl", "--summary-json", str(summary)
    )
    assert code == 0, err
    starter_rules = len(list(starter_pack_dir().rglob("*.yml")))
    assert 0 < json.loads(summary.read_text())["rules_loaded"] <= starter_rules
    titles = {json.loads(line)["rule_title"] for line in out.splitlines()}
    assert "LSASS Memory Dump Through comsvcs.dll MiniDump" in titles


def test_table_then_summary_on_stdout(
    capsys: pytest.CaptureFixture[str], sample: Path, rules: list[str], cache: list[str]
) -> None:
    code, out, err = scan(capsys, str(sample), *rules, *cache)
    assert code == 0, err
    table, _, summary = out.partition("vedette scan summary")
    assert "Process Memory Dump Via Comsvcs.DLL" in table and "2019-08-30 12:54:08" in table
    for needle in (
        "events from 1 file",
        "Rules",
        "Detections by level",
        "Noisiest rules",
        "MSEDGEWIN10",
    ):
        assert needle in summary, needle
    assert "credential-access" in summary
    code, out, _ = scan(capsys, str(sample), *rules, *cache, "--no-summary")
    assert code == 0 and "vedette scan summary" not in out


def test_summary_json_and_navigator_layer(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    rules: list[str],
    cache: list[str],
    tmp_path: Path,
) -> None:
    summary, layer = tmp_path / "summary.json", tmp_path / "layer.json"
    code, _, _ = scan(
        capsys,
        str(sample),
        *rules,
        *cache,
        "-o",
        str(tmp_path / "t.txt"),
        "--summary-json",
        str(summary),
        "--navigator",
        str(layer),
    )
    assert code == 0
    data = json.loads(summary.read_text())
    assert data["events_read"] == data["events_by_format"]["evtx"] > 0
    assert data["rules_loaded"] == 2 and data["rules_not_loaded"] == 0
    assert data["detections"] == 2 and data["detections_by_level"] == {"medium": 1, "high": 1}
    assert data["detections_by_rule"] == {COMSVCS_ID: 1, WMIPRVSE_ID: 1}
    assert data["records_skipped"] == 0 and data["skipped_by_reason"] == {}
    assert data["elapsed_seconds"] > 0
    techniques = {
        t["techniqueID"] for t in json.loads(layer.read_text())["techniques"] if "score" in t
    }
    assert {"T1003.001", "T1047"} <= techniques


def test_filters_narrow_the_output(
    capsys: pytest.CaptureFixture[str], sample: Path, rules: list[str], cache: list[str]
) -> None:
    def ids(*extra: str) -> set[str]:
        code, out, err = scan(
            capsys, str(sample), *rules, *cache, "-f", "jsonl", "--no-summary", *extra
        )
        assert code == 0, err
        return {json.loads(line)["rule_id"] for line in out.splitlines()}

    assert ids("--min-level", "high") == {COMSVCS_ID}
    assert ids("--attack", "T1003") == {COMSVCS_ID}
    assert ids("--attack", "execution") == {WMIPRVSE_ID}
    assert ids("--exclude-rule", COMSVCS_ID) == {WMIPRVSE_ID}
    assert ids("--host", "msedgewin10") == {COMSVCS_ID, WMIPRVSE_ID}
    assert ids("--host", "dc*") == set()
    assert ids("--from", "2019-08-30T12:54:09Z") == set()
    assert ids("--to", "2019-08-30T12:54:09Z") == {COMSVCS_ID, WMIPRVSE_ID}


def test_a_folder_with_corrupt_and_unsupported_files_scans_the_rest(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    rules: list[str],
    cache: list[str],
    tmp_path: Path,
) -> None:
    case = tmp_path / "case"
    case.mkdir()
    shutil.copy(sample, case / "good.evtx")
    data = sample.read_bytes()
    (case / "truncated.evtx").write_bytes(data[: 4096 + 65536 + 3000])  # header, one chunk, a cut
    (case / "garbage.evtx").write_bytes(b"ElfFile\x00" + bytes(range(256)) * 64)
    (case / "notes.bin").write_bytes(bytes(range(256)) * 16)
    (case / "empty.log").write_bytes(b"")
    summary = tmp_path / "summary.json"
    code, out, err = scan(
        capsys, str(case), *rules, *cache, "-f", "jsonl", "--summary-json", str(summary)
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert {(r["rule_id"], Path(r["source"]["path"]).name) for r in records} >= {
        (COMSVCS_ID, "good.evtx")
    }
    data_summary = json.loads(summary.read_text())
    assert data_summary["records_skipped"] >= 3
    skipped_paths = {Path(w["path"]).name for w in data_summary["skipped_examples"]}
    assert {"garbage.evtx", "notes.bin", "empty.log"} <= skipped_paths
    assert "Skipped" in err


def test_archives_and_a_forced_reader_give_the_same_detections(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    rules: list[str],
    cache: list[str],
    tmp_path: Path,
) -> None:
    archive = tmp_path / "triage.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.write(sample, "host/sysmon.evtx")
    code, out, err = scan(capsys, str(archive), *rules, *cache, "-f", "jsonl", "--no-summary")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["rule_id"] for r in records} == {COMSVCS_ID, WMIPRVSE_ID}
    assert {r["source"]["path"] for r in records} == {f"{archive}!host/sysmon.evtx"}
    code, out, err = scan(
        capsys, str(sample), *rules, *cache, "--input-format", "evtx", "-f", "jsonl", "--no-summary"
    )
    assert code == 0, err
    assert len(out.splitlines()) == 2


def test_indicator_hits_use_the_same_shape(
    capsys: pytest.CaptureFixture[str], cache: list[str], rules: list[str], tmp_path: Path
) -> None:
    feed = tmp_path / "ips.txt"
    feed.write_text("# partner feed\n10.0.2.16\n")
    sample = dataset("evtx-attack-samples", "Command and Control", "DE_sysmon-3-rdp-tun.evtx")
    code, out, err = scan(
        capsys, str(sample), *rules, *cache, "--intel", str(feed), "-f", "jsonl", "--no-summary"
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    schema = json.loads(SCHEMA.read_text("utf-8"))
    assert records and all(r["kind"] == "intel" and validate(r, schema) == [] for r in records)
    assert {tuple(r["matched"]) for r in records} == {("DestinationIp",)}


CORRELATION = """\
title: Any Sysmon event
id: 7d1b6c1e-2f70-4c55-9a57-0d3e7f0f0a01
name: sysmon_any
status: test
logsource: {product: windows, service: sysmon}
detection:
  selection: {Channel: Microsoft-Windows-Sysmon/Operational}
  condition: selection
level: low
---
title: Burst of Sysmon events
id: 7d1b6c1e-2f70-4c55-9a57-0d3e7f0f0a02
status: test
correlation:
  type: event_count
  rules: [sysmon_any]
  group-by: [Computer]
  timespan: 1m
  condition: {gte: 3}
level: high
"""


def test_correlation_rules_fire_and_hide_their_base_rule(
    capsys: pytest.CaptureFixture[str], sample: Path, cache: list[str], tmp_path: Path
) -> None:
    rule_file = tmp_path / "burst.yml"
    rule_file.write_text(CORRELATION)
    code, out, err = scan(
        capsys, str(sample), "--rules", str(rule_file), *cache, "-f", "jsonl", "--no-summary"
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records and {r["kind"] for r in records} == {"correlation"}  # generate: false
    assert records[0]["rule_title"] == "Burst of Sysmon events"
    assert records[0]["details"]["group_by"] == {"Computer": "MSEDGEWIN10"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rules", "/nonexistent/rules"], 1),
        (["--from", "last tuesday"], 1),
        (["--min-level", "severe"], 1),
        (["--no-such-option"], 1),
        (["--jobs", "0"], 1),
        (["--input-format", "nope"], 1),
        (["--fail-on", "high"], 3),
        (["--fail-on", "critical"], 0),
    ],
)
def test_exit_codes(
    capsys: pytest.CaptureFixture[str],
    sample: Path,
    rules: list[str],
    cache: list[str],
    args: list[str],
    expected: int,
) -> None:
    code, _, err = scan(
        capsys, str(sample), *rules, *cache, "-o", "/dev/null", "--no-summary", *args
    )
    assert code == expected, err
    assert "Traceback" not in err


def test_no_readable_input_exits_2(
    capsys: pytest.CaptureFixture[str], rules: list[str], cache: list[str], tmp_path: Path
) -> None:
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 8)
    for target in (tmp_path / "missing", tmp_path):
        code, _, err = scan(capsys, str(target), *rules, *cache, "--no-summary")
        assert code == 2, err
        assert "no input could be read" in err
