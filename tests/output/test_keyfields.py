"""Key fields per logsource, from the data table."""

from __future__ import annotations

from scanfakes import make_event

from vedette.events import Detection, LogSource
from vedette.output.keyfields import key_field_table, key_fields_text


def detection_for(
    logsource: LogSource, kind: str = "sigma", matched: tuple[str, ...] = (), **fields: object
) -> Detection:
    event = make_event("f", 1, **fields)
    event.logsource = logsource
    return Detection("r", "R", "low", event, kind=kind, matched=matched)


def test_process_creation_shows_command_line_first() -> None:
    det = detection_for(
        LogSource("windows", frozenset({"sysmon"}), frozenset({"process_creation"})),
        Image="C:\\x.exe",
        CommandLine="x.exe /all",
        User="CORP\\bob",
        Hashes="MD5=00",
    )
    assert key_fields_text(det) == "cmd=x.exe /all  image=C:\\x.exe  user=CORP\\bob"


def test_registry_event_shows_the_key_and_value() -> None:
    det = detection_for(
        LogSource("windows", frozenset({"sysmon"}), frozenset({"registry_set"})),
        TargetObject="HKLM\\Run\\x",
        Details="c:\\x.exe",
        Image="reg.exe",
    )
    assert key_fields_text(det).startswith("key=HKLM\\Run\\x  value=c:\\x.exe")


def test_service_table_when_no_category_applies() -> None:
    det = detection_for(
        LogSource("windows", frozenset({"security"})),
        TargetUserName="bob",
        IpAddress="10.0.0.5",
        LogonType=3,
    )
    assert key_fields_text(det) == "user=bob  src_ip=10.0.0.5  logon_type=3"


def test_intel_hit_shows_the_matching_field_first_and_long_values_are_cut() -> None:
    det = detection_for(
        LogSource("windows"),
        "intel",
        ("DestinationIp",),
        DestinationIp="203.0.113.9",
        CommandLine="a" * 500,
    )
    text = key_fields_text(det, width=50)
    assert text.startswith("dst_ip=203.0.113.9  cmd=")
    assert text.endswith("…") and len(text.split("cmd=")[1]) == 50


def test_every_field_list_is_non_empty() -> None:
    table = key_field_table()
    for section in (table.categories, table.services, table.products):
        assert all(section.values())
    assert table.default


def test_multi_valued_field_reads_as_its_values_not_a_python_list() -> None:
    det = detection_for(
        LogSource("linux", frozenset({"auditd"})),
        type=["SYSCALL", "PATH"],
        exe="/usr/bin/tee",
    )
    text = key_fields_text(det)
    assert "SYSCALL,PATH" in text and "[" not in text
