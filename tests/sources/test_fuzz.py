"""Property tests: no bytes, random or mutated from real samples, make a reader raise."""

from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets import dataset
from vedette.sources import READERS, ReadReport, read_events

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _seeds() -> list[bytes]:
    root = dataset("misc-logs")
    zeek = root / "zeek" / "zed-sample-data" / "zeek-default" / "dns.log.gz"
    auditd = root / "auditd" / "go-libaudit" / "auparse" / "testdata" / "audit-rhel7.log"
    eve = root / "suricata" / "elastic-integrations" / "test-eve-small.log"
    ssh = root / "syslog" / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    web = dataset("evtx-attack-samples", "Command and Control")
    return [
        (web / "Tunna_rdp_tunnel_IIS.log").read_bytes()[:3000],
        (web / "web_attack_and_isp_webshell_localhost_access_log.txt").read_bytes()[:3000],
        b'<Events><Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        b"<EventID>1</EventID><Channel>Security</Channel></System><EventData>"
        b'<Data Name="A">b</Data></EventData></Event></Events>',
        gzip.decompress(zeek.read_bytes())[:3000],
        auditd.read_bytes()[:3000],
        eve.read_bytes()[:3000],
        ssh.read_bytes()[:3000],
        b"CEF:0|a|b|1|2|n|3|src=1.2.3.4 act=x\n" * 5,
        b"a,b,c\n1,2,3\n4,5,6\n",
    ]


def _read_all(path: Path, fmt: str | None) -> None:
    """Read ``path`` to the end; what came out must be accounted for in the report."""
    report = ReadReport()
    events = [event for batch in read_events(path, format=fmt, report=report) for event in batch]
    # errors as data: every event counted, every event and warning says where it came from
    assert len(events) == report.total_events, (fmt, report.summary())
    assert all(event.source.path.startswith(str(path)) for event in events), fmt
    assert all(w.reason and w.path.startswith(str(path)) for w in report.warnings), fmt
    assert report.total_skipped >= len(report.warnings), fmt


def _read_every_way(path: Path) -> None:
    for fmt in [None, *READERS]:
        _read_all(path, fmt)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_raise(tmp_path_factory: object, data: bytes) -> None:
    path = Path(str(tmp_path_factory.mktemp("fuzz"))) / "input"  # type: ignore[attr-defined]
    path.write_bytes(data)
    _read_every_way(path)


@SETTINGS
@given(
    seed=st.integers(min_value=0, max_value=8),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2999), st.binary(min_size=0, max_size=8)),
        min_size=1,
        max_size=12,
    ),
    cut=st.integers(min_value=1, max_value=3000),
)
def test_mutated_samples_never_raise(
    tmp_path_factory: object, seed: int, edits: list[tuple[int, bytes]], cut: int
) -> None:
    data = bytearray(_seeds()[seed])
    for position, replacement in edits:
        position %= max(1, len(data))
        data[position : position + len(replacement)] = replacement
    path = Path(str(tmp_path_factory.mktemp("fuzz"))) / "input"  # type: ignore[attr-defined]
    path.write_bytes(bytes(data[:cut]))
    _read_every_way(path)


@settings(max_examples=15, deadline=None)
@given(edits=st.lists(st.integers(min_value=4096, max_value=200_000), min_size=1, max_size=30))
def test_mutated_evtx_never_raises(tmp_path_factory: object, edits: list[int]) -> None:
    root = dataset("evtx-attack-samples")
    sample = next(root.rglob("*.evtx"))
    data = bytearray(sample.read_bytes())
    for position in edits:
        position %= len(data)
        data[position] ^= 0xA5
    path = Path(str(tmp_path_factory.mktemp("fuzz"))) / "input.evtx"  # type: ignore[attr-defined]
    path.write_bytes(bytes(data))
    _read_all(path, None)
