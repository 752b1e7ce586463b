"""Every reader module registers its reader; names are unique; sniffing picks right."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import vedette.sources as sources
from vedette.sources import READERS, Reader, register, sniff_format


def test_every_reader_module_is_registered() -> None:
    registered = {type(reader) for reader in READERS.values()}
    found = set()
    for module_info in pkgutil.iter_modules(sources.__path__):
        module = importlib.import_module(f"vedette.sources.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Reader) and cls is not Reader and cls.__module__ == module.__name__:
                found.add(cls)
    assert found, "no reader classes found"
    assert found == registered


def test_expected_formats_are_registered() -> None:
    expected = {"evtx", "json", "zeek", "syslog", "auditd", "csv", "cef", "apache_error"}
    assert expected | {"weblog", "winxml", "w3c"} <= set(READERS)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(READERS["json"])


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"ElfFile\x00" + b"\x00" * 100, "evtx"),
        (b'{"a": 1}\n{"b": 2}\n', "json"),
        (b'[\n  {"a": 1},\n  {"b"', "json"),
        (b"#separator \\x09\n#path\tconn\n", "zeek"),
        (b"type=SYSCALL msg=audit(1.0:1): syscall=59\n", "auditd"),
        (b"<13>Feb  5 17:32:18 host app[1]: hi\n", "syslog"),
        (b"CEF:0|a|b|1|2|n|3|src=1.2.3.4\n", "cef"),
        (b"time,host,action\n1,a,b\n2,c,d\n", "csv"),
        (b"[Sun Dec 04 04:47:44 2005] [notice] ok\n", "apache_error"),
        (
            b'<Events><Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">',
            "winxml",
        ),
        (b'1.2.3.4 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1\n', "weblog"),
        (b"#Software: Microsoft Internet Information Services 10.0\n#Fields: date time\n", "w3c"),
        (b"<html><body>Event</body></html>\n", None),
        (b"just some prose\nmore prose\n", None),
        (b"[Sun Dec 04 is not json\n", None),
    ],
)
def test_sniffing(head: bytes, expected: str | None) -> None:
    assert sniff_format(head, "file") == expected
