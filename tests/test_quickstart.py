"""The Quick start, in-process: `vedette scan samples` with the bundled rules finds the attack.

The bundled sample night (see docs/rule-pack.md) holds a phishing-to-LSASS-dump chain on
WS-FIN-07, a domain takeover on SRV-DC-01 and an SSH break-in with persistence on web-01, among
routine activity. These tests pin exactly which starter rules fire on which host: every expected
detection must appear, and nothing else may fire (the benign noise must stay quiet).
"""

from __future__ import annotations

import json
import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from vedette.cli.main import main
from vedette.rulepacks import starter_pack_dir

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
WS, DC, WEB = "WS-FIN-07.corp.example", "SRV-DC-01.corp.example", "web-01"

EXPECTED: dict[str, set[str]] = {
    WS: {
        "proc_creation_win_office_spawns_shell",
        "proc_creation_win_powershell_encoded_command",
        "net_connection_win_powershell_web_to_public_address",
        "posh_ps_download_and_execute",
        "file_event_win_script_host_drops_executable",
        "net_connection_win_program_in_public_folder_outbound",
        "proc_creation_win_reg_add_run_key",
        "registry_set_win_run_key_user_writable_target",
        "proc_creation_win_schtasks_create_suspicious_action",
        "proc_creation_win_whoami_privileges",
        "proc_creation_win_domain_admin_discovery",
        "proc_creation_win_rundll32_comsvcs_minidump",
        "image_load_win_comsvcs_in_rundll32",
        "proc_access_win_lsass_minidump_calltrace",
    },
    DC: {
        "win_security_kerberoasting_rc4_ticket",
        "win_security_logon_failure_unknown_account",
        "win_security_logon_failure_burst",
        "win_system_service_install_suspicious_image",
        "proc_creation_win_certutil_download",
        "file_event_win_script_host_drops_executable",
        "proc_creation_win_mimikatz_commands",
        "proc_access_win_lsass_access_from_writable_folder",
        "proc_creation_win_procdump_lsass",
        "proc_access_win_lsass_minidump_calltrace",
        "file_event_win_lsass_dump_file",
        "proc_creation_win_ntdsutil_ifm",
        "proc_creation_win_net_user_add",
        "win_security_user_account_created",
        "proc_creation_win_net_add_to_admin_group",
        "win_security_member_added_to_privileged_group",
        "proc_creation_win_wevtutil_clear_log",
        "win_system_eventlog_cleared",
        "win_security_audit_log_cleared",
    },
    WEB: {
        "lnx_sshd_account_name_guessing",
        "lnx_sshd_password_guessing",
        "lnx_sshd_login_after_password_guessing",
        "lnx_sshd_accepted_password",  # shown because the chained correlation has generate: true
        "lnx_sudo_grants_admin_rights",
        "lnx_auth_new_local_user",
        "lnx_cron_download_piped_to_shell",
        "lnx_auditd_sudoers_modified",
        "lnx_auditd_user_added_to_admin_group",
        "lnx_auditd_user_account_added",
        "lnx_auditd_chmod_executable_in_tmp",
        "lnx_auditd_download_to_hidden_tmp_file",
        "lnx_auditd_crontab_replaced_from_stdin",
        "lnx_auditd_download_piped_to_shell",
    },
}


def stems_by_id() -> dict[str, str]:
    ids = {}
    for path in starter_pack_dir().glob("*.yml"):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            ids[str(doc["id"])] = path.stem
    return ids


@pytest.fixture
def no_installed_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default rules = the starter pack only, whatever the developer has installed."""
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "vedette-home"))
    monkeypatch.chdir(ROOT)


def scan_jsonl(out: Path, cache: Path, *extra: str) -> list[dict[str, Any]]:
    code = main(
        [
            "scan",
            "samples",
            "--format",
            "jsonl",
            "-o",
            str(out),
            "--cache-dir",
            str(cache),
            "--no-progress",
            "--no-summary",
            *extra,
        ]
    )
    assert code == 0
    return [json.loads(line) for line in out.read_text("utf-8").splitlines() if line.strip()]


def fired(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Host -> stems of the starter rules that fired there."""
    stems = stems_by_id()
    by_host: dict[str, set[str]] = {}
    for record in records:
        stem = stems.get(record["rule_id"], record["rule_id"])
        by_host.setdefault(record["host"], set()).add(stem)
    return by_host


@pytest.mark.usefixtures("no_installed_rules")
def test_quickstart_scan_finds_exactly_the_attack(tmp_path: Path) -> None:
    records = scan_jsonl(tmp_path / "out.jsonl", tmp_path / "cache")
    assert fired(records) == EXPECTED


@pytest.mark.usefixtures("no_installed_rules")
def test_quickstart_scan_reads_every_sample_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    scan_jsonl(tmp_path / "out.jsonl", tmp_path / "cache", "--summary-json", str(summary))
    text = summary.read_text("utf-8")
    assert '"not-a-log"' not in text
    data = json.loads(text)
    assert data


@pytest.mark.usefixtures("no_installed_rules")
def test_second_run_with_warm_cache_gives_the_same_detections(tmp_path: Path) -> None:
    # ./scripts/run twice: the second run loads the compiled rules from the cache.
    first = scan_jsonl(tmp_path / "first.jsonl", tmp_path / "cache")
    second = scan_jsonl(tmp_path / "second.jsonl", tmp_path / "cache")
    assert len(second) == len(first) > 0
    assert fired(second) == fired(first)


@pytest.mark.usefixtures("no_installed_rules")
def test_quickstart_prints_a_timeline_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", "samples", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    # The rule column wraps long titles onto the row's next line: the title's two parts.
    assert "LSASS Memory Dump Through comsvcs.dll" in out and "MiniDump" in out
    assert "SSH Login After Password" in out and "Guessing" in out
    assert "T1003.001" in out
    assert "summary" in out.lower()


@pytest.mark.usefixtures("no_installed_rules")
def test_quickstart_uses_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Air-gapped by default: the scan must not open a single internet socket (pySigma, for one,
    # would download ATT&CK data if asked for it). Worker processes are forked from this one,
    # so they inherit the tripwire.
    attempts: list[object] = []

    def tripwire(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network use during a scan")

    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            tripwire(self, address)
        real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    records = scan_jsonl(tmp_path / "out.jsonl", tmp_path / "cache")
    assert attempts == []
    assert fired(records) == EXPECTED


INSTALLED_RULE = """\
title: Test - whoami run by anyone
id: 0f7d4a8e-5a4b-4c7e-9d53-2b8f7e0c1a11
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\\\whoami.exe'
    condition: selection
level: high
"""


def test_rules_installed_by_update_join_the_starter_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `vedette rules update --file` then `vedette scan`: the default rules are both sets.
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "vedette-home"))
    monkeypatch.chdir(ROOT)
    archive = tmp_path / "rules.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rules/windows/proc_creation_test_whoami.yml", INSTALLED_RULE)
    assert main(["rules", "update", "--file", str(archive)]) == 0

    records = scan_jsonl(tmp_path / "out.jsonl", tmp_path / "cache")
    by_host = fired(records)
    whoami = "0f7d4a8e-5a4b-4c7e-9d53-2b8f7e0c1a11"
    assert whoami in by_host[WS]  # the installed rule: plain and /all whoami on WS-FIN-07
    assert by_host[WS] - {whoami} == EXPECTED[WS]  # the starter pack as before
