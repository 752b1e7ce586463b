"""Flattening Windows events in their XML-as-JSON shape, and Event XML (Sysmon for Linux)."""

from __future__ import annotations

from vedette.normalize.winevent import (
    classify_windows_event,
    flatten_windows_event,
    parse_event_xml,
)


def test_system_and_event_data() -> None:
    record = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": "4688"},
                "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00.000Z"}},
                "EventRecordID": 12,
                "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
                "Channel": "Security",
                "Computer": "ws1",
                "Level": 0,
            },
            "EventData": {"NewProcessName": "C:\\x.exe", "Level": "from data"},
        }
    }
    fields = flatten_windows_event(record)
    assert fields["EventID"] == 4688
    assert fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert fields["TimeCreated"] == "2024-01-01T00:00:00.000Z"
    assert fields["Execution_ProcessID"] == 4 and fields["Execution_ThreadID"] == 8
    assert "ProcessID" not in fields and "ThreadID" not in fields
    assert fields["Level"] == "from data"  # EventData wins over secondary System fields
    assert fields["NewProcessName"] == "C:\\x.exe"
    logsource = classify_windows_event(fields)
    assert logsource.product == "windows" and "security" in logsource.services


def test_unnamed_data_and_attributes_only_elements() -> None:
    fields = flatten_windows_event(
        {
            "System": {"EventID": 400, "Channel": "Windows PowerShell"},
            "EventData": {"Data": {"#text": ["Available", "None", "HostApplication=x"]}},
            "UserData": {
                "Thing": {"#attributes": {"xmlns": "u"}},
                "Repeated": [{"#text": "a", "#attributes": {"n": 1}}, "b"],
            },
        }
    )
    assert fields["Data"] == ["Available", "None", "HostApplication=x"]
    assert fields["Thing"] is None
    assert fields["Repeated"] == ["a", "b"]


def test_not_an_event() -> None:
    assert flatten_windows_event({"Event": "nope"}) == {}
    assert flatten_windows_event({"Event": {"EventData": {"A": 1}}}) == {"A": 1}


def test_event_xml() -> None:
    xml = (
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        '<Provider Name="Linux-Sysmon"/><EventID>3</EventID>'
        '<TimeCreated SystemTime="2021-10-14T14:42:32.637573000Z"/>'
        "<Channel>Linux-Sysmon/Operational</Channel><Computer>u1</Computer></System>"
        '<EventData><Data Name="DestinationPort">443</Data><Data>unnamed</Data></EventData>'
        "</Event>"
    )
    record = parse_event_xml(xml)
    assert record is not None
    fields = flatten_windows_event(record)
    assert fields["EventID"] == 3 and fields["DestinationPort"] == "443"
    assert fields["Data"] == "unnamed"
    assert classify_windows_event(fields).categories == frozenset({"network_connection"})
    assert parse_event_xml("<Event><unclosed>") is None
