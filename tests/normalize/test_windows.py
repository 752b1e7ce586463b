"""Windows classification and aliases: unit behaviour on hand-made flattened events."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from vedette.events import LogSource
from vedette.normalize.windows import compile_mapping, normalize_windows, windows_mapping

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def classify(**fields: Any) -> tuple[LogSource, dict[str, Any]]:
    event = dict(fields)
    return normalize_windows(event), event


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        (1, {"process_creation"}),
        (2, {"file_change"}),
        (3, {"network_connection"}),
        (5, {"process_termination"}),
        (6, {"driver_load"}),
        (7, {"image_load"}),
        (8, {"create_remote_thread"}),
        (10, {"process_access"}),
        (11, {"file_event"}),
        (13, {"registry_event", "registry_set"}),
        (14, {"registry_event", "registry_rename"}),
        (15, {"create_stream_hash"}),
        (17, {"pipe_created"}),
        (18, {"pipe_created"}),
        (19, {"wmi_event"}),
        (22, {"dns_query"}),
        (23, {"file_delete"}),
        (25, {"process_tampering"}),
        (26, {"file_delete", "file_delete_detected"}),
        (29, {"file_executable_detected"}),
    ],
)
def test_sysmon_event_ids_map_to_sigma_categories(event_id: int, expected: set[str]) -> None:
    logsource, _ = classify(Channel=SYSMON, EventID=event_id)
    assert logsource == LogSource("windows", frozenset({"sysmon"}), frozenset(expected))


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("CreateKey", {"registry_event", "registry_add"}),
        ("DeleteKey", {"registry_event", "registry_delete"}),
        ("DeleteValue", {"registry_event", "registry_delete"}),
        ("createkey", {"registry_event", "registry_add"}),
        (None, {"registry_event"}),
    ],
)
def test_sysmon_12_category_depends_on_event_type(
    event_type: str | None, expected: set[str]
) -> None:
    fields: dict[str, Any] = {"Channel": SYSMON, "EventID": 12}
    if event_type is not None:
        fields["EventType"] = event_type
    assert normalize_windows(fields).categories == expected


def test_security_4688_is_process_creation_with_sysmon_names() -> None:
    logsource, event = classify(
        Channel="Security",
        EventID=4688,
        NewProcessName="C:\\Windows\\System32\\cmd.exe",
        ParentProcessName="C:\\Windows\\explorer.exe",
        ProcessId="0x1a4",
        MandatoryLabel="S-1-16-12288",
        SubjectUserName="alice",
        SubjectDomainName="CORP",
        TargetUserName="-",
        TargetDomainName="-",
        SubjectLogonId="0x3e7",
        CommandLine="cmd /c whoami",
    )
    assert logsource.admits("windows", None, "process_creation")
    assert logsource.admits("windows", "security", None)
    assert event["Image"] == "C:\\Windows\\System32\\cmd.exe"
    assert event["ParentImage"] == "C:\\Windows\\explorer.exe"
    assert event["ParentProcessId"] == "0x1a4"
    assert event["IntegrityLevel"] == "S-1-16-12288"
    assert event["User"] == "CORP\\alice"  # Target* is "-": the subject runs the process
    assert event["LogonId"] == "0x3e7"
    assert event["NewProcessName"] == "C:\\Windows\\System32\\cmd.exe"  # originals stay


def test_4688_user_prefers_the_target_account_when_present() -> None:
    _, event = classify(
        Channel="Security",
        EventID=4688,
        SubjectUserName="HOST$",
        SubjectDomainName="CORP",
        TargetUserName="bob",
        TargetDomainName="CORP",
    )
    assert event["User"] == "CORP\\bob"


def test_alias_never_overwrites_a_field_the_event_has() -> None:
    _, event = classify(Channel="Security", EventID=4688, NewProcessName="a.exe", Image="b.exe")
    assert event["Image"] == "b.exe"


def test_alias_without_source_is_not_added() -> None:
    _, event = classify(Channel="Security", EventID=4688)
    assert "Image" not in event and "User" not in event


def test_powershell_channels() -> None:
    assert classify(Channel="Microsoft-Windows-PowerShell/Operational", EventID=4104)[
        0
    ] == LogSource("windows", frozenset({"powershell"}), frozenset({"ps_script"}))
    assert classify(Channel="PowerShellCore/Operational", EventID=4103)[0].categories == {
        "ps_module"
    }
    classic = classify(Channel="Windows PowerShell", EventID=400)[0]
    assert classic == LogSource(
        "windows", frozenset({"powershell-classic"}), frozenset({"ps_classic_start"})
    )
    assert classify(Channel="Windows PowerShell", EventID=600)[0].categories == {
        "ps_classic_provider_start"
    }


def test_defender_detection_is_antivirus_with_rule_field_names() -> None:
    logsource, event = classify(
        Channel="Microsoft-Windows-Windows Defender/Operational",
        EventID=1116,
        **{"Threat Name": "HackTool:Win32/Mimikatz", "Path": "file:_C:\\x\\m.exe"},
    )
    assert logsource.admits(None, None, "antivirus")
    assert logsource.admits("windows", "windefend", None)
    assert event["ThreatName"] == "HackTool:Win32/Mimikatz"
    assert event["Signature"] == "HackTool:Win32/Mimikatz"
    assert event["Filename"] == "file:_C:\\x\\m.exe"


def test_defender_config_change_is_windefend_but_not_antivirus() -> None:
    logsource, event = classify(
        Channel="Microsoft-Windows-Windows Defender/Operational",
        EventID=5007,
        **{"New Value": "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Exclusions\\Paths\\C:\\"},
    )
    assert logsource.categories == frozenset()
    assert logsource.services == {"windefend"}
    assert event["NewValue"].startswith("HKLM\\SOFTWARE")


def test_security_file_access_only_for_file_objects() -> None:
    file_access, event = classify(
        Channel="Security",
        EventID=4663,
        ObjectType="File",
        ObjectName="C:\\Users\\a\\AppData\\Roaming\\Microsoft\\Credentials\\X",
        ProcessName="C:\\Temp\\evil.exe",
    )
    assert file_access.categories == {"file_access"}
    assert event["FileName"].endswith("\\Credentials\\X")
    assert event["Image"] == "C:\\Temp\\evil.exe"
    registry, _ = classify(Channel="Security", EventID=4663, ObjectType="Key")
    assert registry.categories == frozenset()
    assert registry.services == {"security"}


def test_channel_match_is_case_insensitive_and_event_id_may_be_text() -> None:
    logsource, _ = classify(Channel="microsoft-windows-sysmon/operational", EventID="1")
    assert logsource.categories == {"process_creation"}


def test_provider_stands_in_for_a_missing_channel() -> None:
    logsource, _ = classify(Provider_Name="Microsoft-Windows-Sysmon", EventID=3)
    assert logsource.admits("windows", "sysmon", "network_connection")


def test_unknown_channel_is_still_windows() -> None:
    logsource, _ = classify(Channel="Some-Vendor/Operational", EventID=1)
    assert logsource == LogSource("windows")
    assert logsource.admits("windows", None, None)
    assert not logsource.admits("windows", None, "process_creation")


def test_known_channel_unknown_event_id_keeps_the_service() -> None:
    logsource, _ = classify(Channel="System", EventID=7045)
    assert logsource == LogSource("windows", frozenset({"system"}))


def test_servicebus_answers_to_both_service_spellings() -> None:
    logsource, _ = classify(Channel="Microsoft-ServiceBus-Client/Operational", EventID=1)
    assert logsource.services == {"servicebus-client", "microsoft-servicebus-client"}


def test_mapping_compiles_from_a_small_document() -> None:
    document = yaml.safe_load(
        """
        channels: {Vendor/Operational: vendor}
        categories:
          Vendor/Operational:
            7: [thing, {category: special, when: {Kind: [A, b]}}]
        aliases:
          - channel: Vendor/Operational
            event_ids: [7]
            fields: {Image: [Path, "{Dir}\\\\{File}"]}
        """
    )
    mapping = compile_mapping(document)
    event: dict[str, Any] = {"Channel": "VENDOR/operational", "EventID": 7, "Kind": "B"}
    event.update(Dir="C:", File="x.exe")
    logsource = normalize_windows(event, mapping)
    assert logsource == LogSource("windows", frozenset({"vendor"}), frozenset({"thing", "special"}))
    assert event["Image"] == "C:\\x.exe"


def test_packaged_mapping_is_loaded_once() -> None:
    assert windows_mapping() is windows_mapping()


def test_every_event_gets_the_common_security_userid_name() -> None:
    for channel in ("Security", "Microsoft-Windows-Sysmon/Operational", "Some-Vendor/Operational"):
        _, event = classify(Channel=channel, EventID=1, UserID="S-1-5-18")
        assert event["Security_UserID"] == "S-1-5-18"
    _, event = classify(Channel="Security", EventID=1)
    assert "Security_UserID" not in event
