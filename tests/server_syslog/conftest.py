"""Fixtures of the syslog listener tests: a test CA and server/client certificates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trustme

# The tests import their in-memory sink and helpers from syslog_testkit in this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PEM files: the CA, a server cert/key for 127.0.0.1, a client cert/key."""
    folder = tmp_path_factory.mktemp("tls")
    server = tls_ca.issue_cert("127.0.0.1", "localhost")
    client = tls_ca.issue_cert("sensor-1.example")
    files = {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "client": folder / "client.pem",
    }
    tls_ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    return {name: str(path) for name, path in files.items()}
