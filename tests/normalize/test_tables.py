"""Data-driven classification of non-Windows sources (normalize/data/*.yaml)."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from vedette.events import LogSource
from vedette.normalize.tables import linux_sysmon_logsource, source_table

TABLES = ("zeek", "suricata", "cloudtrail", "syslog", "syslog_facility", "auditd", "cef",
          "linux_sysmon", "apache_error", "weblog")  # fmt: skip


@pytest.mark.parametrize("name", TABLES)
def test_every_table_loads(name: str) -> None:
    table = source_table(name)
    assert table.classify("anything-unknown").logsource.product == table.product


def test_data_files_are_all_used() -> None:
    root = resources.files("vedette.normalize").joinpath("data")
    names = {p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml")}
    mine = {n for n in names if not n.startswith("windows")}  # windows*: the Windows mapping
    assert mine - {"auditd_fields"} == set(TABLES)


def test_zeek_kind_is_a_service_and_aliases_are_added() -> None:
    fields = {"qtype_name": "TXT", "query": "x.example", "id.orig_h": "10.0.0.1"}
    logsource = source_table("zeek").classify("DNS").apply(fields)
    assert logsource == LogSource("zeek", frozenset({"dns"}), frozenset({"dns"}))
    assert fields["record_type"] == "TXT" and fields["src_ip"] == "10.0.0.1"
    unknown = source_table("zeek").classify("modbus")
    assert unknown.logsource.services == frozenset({"modbus"})


def test_aliases_never_overwrite() -> None:
    fields = {"qtype_name": "TXT", "record_type": "kept"}
    source_table("zeek").classify("dns").apply(fields)
    assert fields["record_type"] == "kept"


def test_syslog_programs() -> None:
    table = source_table("syslog")
    assert table.classify("sshd").logsource.services == frozenset({"syslog", "sshd", "auth"})
    assert table.classify("CRON").logsource.services == frozenset({"syslog", "cron"})
    assert table.classify(None).logsource.services == frozenset({"syslog"})


def test_linux_sysmon_categories() -> None:
    assert linux_sysmon_logsource({"EventID": 1}).categories == frozenset({"process_creation"})
    assert linux_sysmon_logsource({"EventID": 3}).categories == frozenset({"network_connection"})
    assert linux_sysmon_logsource({"EventID": 999}).product == "linux"


def test_sigma_zeek_services_are_known() -> None:
    """Every Zeek log type the zeek data file names is a real Zeek log type name."""
    data = yaml.safe_load(
        resources.files("vedette.normalize").joinpath("data/zeek.yaml").read_text()
    )
    assert set(data["kinds"]) <= {"dns", "http", "conn", "smb_files", "dce_rpc", "x509", "rdp"}
