"""Issue 15, the timeline a responder reads: evidence per row, one row per event, repeats
folded, no cut host names, no ``user=None``, empty details filled, control characters escaped,
CSV formulas neutralised."""

from __future__ import annotations

import csv
import io

from scanfakes import make_event

from vedette.events import Detection, Event, LogSource, SourceRef
from vedette.output.keyfields import key_fields_text
from vedette.output.timeline import Row, RowBuilder
from vedette.output.writers import open_writer


def table(items: list[Detection], **options: object) -> str:
    stream = io.StringIO()
    writer = open_writer("table", stream, color=False, width=200, **options)
    for item in items:
        writer.write(item)
    writer.close()
    return stream.getvalue()


def burst(count: int, gap: float, user: str = "admin") -> list[Detection]:
    """A password-guessing burst: one rule, one host, the same key fields."""
    return [
        Detection(
            "guess",
            "Failed logon",
            "low",
            make_event("sec.evtx", 100 + i, seconds=i * gap, TargetUserName=user),
        )
        for i in range(count)
    ]


def rows_of(items: list[Detection], **options: object) -> list[Row]:
    rows: list[Row] = []
    builder = RowBuilder(rows.append, **options)  # type: ignore[arg-type]
    for item in items:
        builder.add(item)
    builder.close()
    return rows


def test_each_row_names_channel_event_id_record_id_and_file() -> None:
    event = make_event("C:/cases/host1/Sysmon.evtx", 4242, CommandLine="whoami")
    text = table([Detection("r", "Whoami", "high", event)])
    row = next(line for line in text.splitlines() if "Whoami" in line)
    assert "Sysmon 1" in row and "Sysmon.evtx #4242" in row
    line_event = Event(
        {"message": "x"},
        LogSource("linux"),
        None,
        "h",
        SourceRef("/var/log/auth.log", "syslog", line=17),
    )
    assert "auth.log :17" in table([Detection("s", "SSH", "low", line_event)])


def test_an_event_matching_several_rules_is_one_row_listing_every_rule() -> None:
    event = make_event("a.evtx", 7, CommandLine="mimikatz")
    found = [
        Detection("r1", "Mimikatz command line", "high", event),
        Detection("r2", "Suspicious process", "medium", event),
        Detection("r3", "Credential tool", "critical", event),
    ]
    rows = rows_of(found)
    assert len(rows) == 1 and [d.rule_id for d in rows[0].detections] == ["r1", "r2", "r3"]
    text = table(found)
    assert text.count("a.evtx #7") == 1
    for title in ("Mimikatz command line", "Suspicious process", "Credential tool"):
        assert title in text
    assert len(rows_of(found, group=False)) == 3


def test_detections_of_one_event_separated_by_other_events_still_make_one_row() -> None:
    one, two = make_event("a.evtx", 1), make_event("a.evtx", 2)
    found = [Detection("r1", "A", "low", one), Detection("r2", "B", "low", two)]
    found.append(Detection("r3", "C", "low", one))  # same time, sorted by rule id after r2
    rows = rows_of(found)
    assert [[d.rule_id for d in r.detections] for r in rows] == [["r1", "r3"], ["r2"]]


def test_a_burst_folds_into_one_row_with_count_first_and_last_time() -> None:
    rows = rows_of(burst(50, gap=2.0))
    assert len(rows) == 1
    assert rows[0].count == 50
    assert rows[0].first is not None and rows[0].last is not None
    assert (rows[0].last - rows[0].first).total_seconds() == 98
    text = table(burst(50, gap=2.0))
    assert "x50 to 12:01:38" in text and "to #149" in text
    assert "50 detections in 1 rows" in text


def test_folding_needs_the_same_key_fields_a_short_gap_and_can_be_turned_off() -> None:
    assert len(rows_of(burst(3, 2.0, "alice") + burst(3, 2.0, "bob"))) == 2
    assert len(rows_of(burst(5, gap=600.0))) == 5  # ten minutes apart: separate events
    assert len(rows_of(burst(5, gap=2.0), fold_seconds=0)) == 5
    assert table(burst(5, 2.0), fold_seconds=0).count("Failed logon") == 5


def test_folded_rows_keep_time_order_with_rows_between_them() -> None:
    found = burst(3, gap=10.0)
    other = Detection("x", "Other", "high", make_event("b.evtx", 1, seconds=5))
    found.insert(1, other)
    rows = rows_of(found)
    assert [r.head.rule_id for r in rows] == ["guess", "x"]
    assert rows[0].count == 3


def test_host_names_are_not_cut_to_ten_characters() -> None:
    event = make_event("a.evtx", 1, host="WIN-77LTAPHIQ1R.example.corp")
    text = table([Detection("r", "Rule", "high", event)])
    assert "WIN-77LTAPHIQ1R " in text


def test_no_value_placeholders_are_never_printed_as_values() -> None:
    event = make_event("a.evtx", 1, CommandLine="net user", User="None")
    text = key_fields_text(Detection("r", "Net", "low", event))
    assert "cmd=net user" in text and "None" not in text
    for nothing in ("-", "null", "-\\-", "None"):
        event = make_event("a.evtx", 1, Image="x.exe", User=nothing)
        assert "user=" not in key_fields_text(Detection("r", "X", "low", event))


def test_an_event_without_key_fields_shows_its_own_data() -> None:
    fields = {"EventID": 15457, "Channel": "Application", "Data": ["xp_cmdshell", "0", "1"]}
    event = Event(fields, LogSource("windows", frozenset({"application"})), None, "sql1")
    text = key_fields_text(Detection("r", "MSSQL XPCmdshell", "high", event))
    assert text == "Data=xp_cmdshell,0,1"


def test_control_and_escape_sequences_from_logs_are_shown_escaped() -> None:
    evil = "cmd \x1b]0;owned\x07 \x1b[2J\rhidden \u202egnp.exe"
    event = make_event("a\x1b[31m.evtx", 1, host="h\x1b[8m", CommandLine=evil)
    text = table([Detection("r", "Title \x1b[5m", "high", event)])
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07" in text and "\\u202e" in text and "\\x1b[31m.evtx" in text


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_unless_raw() -> None:
    payload = '=HYPERLINK("http://x","y")'
    event = make_event("a.evtx", 1, host="@evil", CommandLine="c")
    found = [Detection("r", payload, "high", event), Detection("s", "-2+3", "low", event)]

    def cells(**options: object) -> list[dict[str, str]]:
        stream = io.StringIO()
        writer = open_writer("csv", stream, **options)
        for item in found:
            writer.write(item)
        writer.close()
        return list(csv.DictReader(io.StringIO(stream.getvalue())))

    safe = cells()
    assert safe[0]["rule_title"] == "'" + payload and safe[0]["host"] == "'@evil"
    assert safe[1]["rule_title"] == "'-2+3"
    assert safe[0]["record_id"] == "1" and safe[0]["level"] == "high"
    raw = cells(raw=True)
    assert raw[0]["rule_title"] == payload and raw[0]["host"] == "@evil"


def test_a_narrow_terminal_puts_the_evidence_on_a_line_under_the_row() -> None:
    event = make_event("C:/cases/Sysmon.evtx", 4242, CommandLine="whoami /all")
    stream = io.StringIO()
    writer = open_writer("table", stream, color=False, width=100)
    writer.write(Detection("r", "Whoami", "high", event))
    writer.close()
    lines = stream.getvalue().splitlines()
    assert "Evidence" not in lines[0]
    row = lines.index(next(line for line in lines if "Whoami" in line))
    assert "cmd=whoami /all" in lines[row]
    assert lines[row + 1].strip() == "Sysmon 1  Sysmon.evtx #4242"
    assert max(len(line) for line in lines) <= 100
