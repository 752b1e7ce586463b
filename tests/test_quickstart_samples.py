"""The bundled samples are exactly what scripts/gen_samples.py writes, and hold only safe names.

Hand edits to samples/ would drift from the story the generator tells (and the docs describe);
regenerate instead: ``.venv/bin/python scripts/gen_samples.py``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DOCUMENTATION_NETS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?![\d.])")
# XML namespace names that the EVTX format itself carries (never contacted).
XML_NAMESPACE_HOSTS = {"schemas.microsoft.com", "manifests.microsoft.com"}
DOMAIN = re.compile(r"\b([a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|example|io|ru|cn))\b", re.I)


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_samples", ROOT / "scripts" / "gen_samples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_samples_are_what_the_generator_writes(tmp_path: Path) -> None:
    counts = generator().write_samples(tmp_path)
    assert sample_files(tmp_path) == sample_files(SAMPLES)
    assert 200 <= sum(counts.values()) <= 600  # "a few hundred lines"


def test_samples_use_documentation_addresses_and_example_domains_only() -> None:
    problems = []
    for name, data in sample_files(SAMPLES).items():
        text = data.decode("utf-8")
        for address in set(IPV4.findall(text)):
            ip = ipaddress.ip_address(address)
            if not any(ip in net for net in DOCUMENTATION_NETS):
                problems.append(f"{name}: {address}")
        for domain in set(DOMAIN.findall(text)):
            labels = domain.lower().split(".")  # corp.example, cdn-update.example.net
            if "example" not in labels[-2:] and domain.lower() not in XML_NAMESPACE_HOSTS:
                problems.append(f"{name}: {domain}")
    assert problems == []
