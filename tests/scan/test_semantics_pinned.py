"""Issue 15, semantics decided: pinned with real rules and events through the whole scan.

- An empty EVTX <Data> element satisfies both ``null`` and ``''`` (SigmaHQ's CACTUSTORCH rule
  writes ``StartModule: null``, the LSASS password-dumper rule ``StartModule: ''``).
- Security 4688 ``LogonId`` comes from ``SubjectLogonId``.
- Security 4663 on a file is ``file_access``: one event raises the file_access rule and its
  Security twin (kept on purpose).
- Where a peer tool is wrong and Vedette right: Sysmon 12 CreateKey is not registry_delete; a
  boolean ``Initiated: true`` matches ``'true'``; unnamed <Data> values match
  ``Data|contains``; a ``not filter`` on an absent field lets the rule fire.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from datasets import dataset
from vedette.cli.main import main

SYSMON = "Microsoft-Windows-Sysmon/Operational"
CACTUSTORCH = "2e4e488a-6164-4811-9ea1-f960c7359c40"
LSASS_DUMPER = "f239b326-2f41-4d6b-9dfa-c846a60ef505"


def scan(tmp_path: Path, inputs: list[Path], rules: list[Path]) -> list[dict[str, Any]]:
    out = tmp_path / "out.jsonl"
    args = ["scan", "--no-progress", "--no-cache", "--no-summary", "-o", str(out)]
    for rule in rules:
        args += ["--rules", str(rule)]
    assert main([*args, *map(str, inputs)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def record(channel: str, event_id: int, data: dict[str, Any] | list[Any], rid: int = 1) -> str:
    """One event as the EVTX parser renders it (named Data keyed by name)."""
    event_data = {"Data": data} if isinstance(data, list) else data
    return json.dumps(
        {
            "Event": {
                "System": {
                    "Provider": {"#attributes": {"Name": "p"}},
                    "EventID": event_id,
                    "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T12:00:00.000Z"}},
                    "EventRecordID": rid,
                    "Channel": channel,
                    "Computer": "WS1",
                },
                "EventData": event_data,
            }
        }
    )


def rule(tmp_path: Path, name: str, logsource: str, detection: str) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(
        f"title: '{name}'\nid: 00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}\n"
        f"status: test\nlogsource: {logsource}\ndetection:\n{detection}\nlevel: high\n"
    )
    return path


def test_an_empty_evtx_data_element_satisfies_null_and_empty_string(tmp_path: Path) -> None:
    folder = dataset("sigma", "rules", "windows", "create_remote_thread")
    cactustorch = folder / "create_remote_thread_win_hktl_cactustorch.yml"
    dumper = folder / "create_remote_thread_win_susp_password_dumper_lsass.yml"
    injection = dataset(
        "evtx-attack-samples",
        "AutomatedTestingTools",
        "Malware",
        "sideloading_uacbypass_rundll32_injection_c2.evtx",
    )
    hashdump = dataset(
        "evtx-attack-samples", "Credential Access", "CA_sysmon_hashdump_cmd_meterpreter.evtx"
    )
    found = scan(tmp_path, [injection, hashdump], [cactustorch, dumper])
    fired = {(d["rule_id"], d["source"]["record_id"]) for d in found}
    # winword.exe -> SysWOW64\explorer.exe with <Data Name="StartModule"/> (record 417082)
    assert (CACTUSTORCH, 417082) in fired
    assert (LSASS_DUMPER, 9060) in fired and (LSASS_DUMPER, 9066) in fired


def test_null_and_empty_string_on_json_values_too(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        "\n".join(
            record(SYSMON, 8, {"TargetImage": "C:\\x\\t.exe", "StartModule": value}, rid)
            for rid, value in enumerate(["", None, "C:\\m.dll"], start=1)
        )
        + "\n"
        + record(SYSMON, 8, {"TargetImage": "C:\\x\\t.exe"}, 4)
        + "\n"
    )
    null = rule(
        tmp_path, "null", "{product: windows, category: create_remote_thread}",
        "  sel: {TargetImage|endswith: '\\t.exe', StartModule: null}\n  condition: sel",
    )  # fmt: skip
    found = scan(tmp_path, [events], [null])
    assert sorted(d["source"]["record_id"] for d in found) == [1, 2, 4]


def test_security_4688_logon_id_is_the_subject_logon_id(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    data = {
        "NewProcessName": "C:\\w\\cmd.exe",
        "SubjectUserName": "alice",
        "SubjectDomainName": "CORP",
        "SubjectLogonId": "0x5f3e2",
        "TargetUserName": "bob",
        "TargetDomainName": "CORP",
        "TargetLogonId": "0x0",
    }
    events.write_text(record("Security", 4688, data) + "\n")
    logon = rule(
        tmp_path, "logon", "{product: windows, category: process_creation}",
        "  sel: {LogonId: '0x5f3e2'}\n  condition: sel",
    )  # fmt: skip
    found = scan(tmp_path, [events], [logon])
    assert len(found) == 1 and found[0]["event"]["LogonId"] == "0x5f3e2"


def test_security_4663_raises_its_file_access_rule_beside_its_security_twin(
    tmp_path: Path,
) -> None:
    events = tmp_path / "e.jsonl"
    data = {"ObjectType": "File", "ObjectName": "C:\\Users\\a\\AppData\\x\\Login Data",
            "ProcessName": "C:\\evil.exe", "AccessMask": "0x1"}  # fmt: skip
    events.write_text(record("Security", 4663, data) + "\n")
    file_access = rule(
        tmp_path, "fa", "{product: windows, category: file_access}",
        "  sel: {FileName|endswith: '\\Login Data'}\n  condition: sel",
    )  # fmt: skip
    twin = rule(
        tmp_path, "twin", "{product: windows, service: security}",
        "  sel: {EventID: 4663, ObjectName|endswith: '\\Login Data'}\n  condition: sel",
    )  # fmt: skip
    found = scan(tmp_path, [events], [file_access, twin])
    assert sorted(d["rule_title"] for d in found) == ["fa", "twin"]
    assert {d["source"]["record_id"] for d in found} == {1}


@pytest.mark.parametrize(
    ("event_type", "fires"),
    [("DeleteKey", True), ("DeleteValue", True), ("CreateKey", False), ("SetValue", False)],
)
def test_sysmon_12_create_key_is_not_registry_delete(
    tmp_path: Path, event_type: str, fires: bool
) -> None:
    events = tmp_path / "e.jsonl"
    data = {"EventType": event_type, "TargetObject": "HKLM\\SOFTWARE\\x", "Image": "C:\\r.exe"}
    events.write_text(record(SYSMON, 12, data) + "\n")
    deleted = rule(
        tmp_path, "del", "{product: windows, category: registry_delete}",
        "  sel: {TargetObject|startswith: 'HKLM\\SOFTWARE\\'}\n  condition: sel",
    )  # fmt: skip
    assert bool(scan(tmp_path, [events], [deleted])) is fires


def test_boolean_initiated_true_matches_the_text_true(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    data = {"Image": "C:\\w\\wordpad.exe", "Initiated": True, "DestinationPort": 4444}
    events.write_text(record(SYSMON, 3, data) + "\n")
    # SigmaHQ writes Initiated: 'true' (a string); EVTX JSON gives a boolean.
    wordpad = dataset(
        "sigma", "rules", "windows", "network_connection",
        "net_connection_win_wordpad_uncommon_ports.yml",
    )  # fmt: skip
    assert "Initiated: 'true'" in wordpad.read_text()
    found = scan(tmp_path, [events], [wordpad])
    assert len(found) == 1


def test_unnamed_data_values_match_data_contains(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(record("Application", 1000, ["MsMpEng.exe", "4.18", "mpengine.dll"]) + "\n")
    contains = rule(
        tmp_path, "data", "{product: windows, service: application}",
        "  sel: {EventID: 1000, Data|contains|all: [MsMpEng.exe, mpengine.dll]}\n"
        "  condition: sel",
    )  # fmt: skip
    assert len(scan(tmp_path, [events], [contains])) == 1


def test_not_filter_on_an_absent_field_lets_the_rule_fire(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(record(SYSMON, 1, {"Image": "C:\\w\\whoami.exe"}) + "\n")
    absent = rule(
        tmp_path, "absent", "{product: windows, category: process_creation}",
        "  sel: {Image|endswith: '\\whoami.exe'}\n"
        "  filter: {ParentImage|endswith: '\\explorer.exe'}\n"
        "  condition: sel and not filter",
    )  # fmt: skip
    assert len(scan(tmp_path, [events], [absent])) == 1


def test_the_record_id_shown_is_the_events_own_event_record_id(tmp_path: Path) -> None:
    folder = dataset("evtx-attack-samples", "Credential Access")
    rules = dataset("sigma", "rules", "windows", "builtin", "security")
    found = scan(tmp_path, [folder], [rules])
    assert found
    for detection in found:
        assert detection["source"]["record_id"] == detection["event"]["EventRecordID"]
