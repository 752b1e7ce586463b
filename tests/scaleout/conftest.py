"""Fixtures of the scale-out tests: a real NATS (JetStream) and a real PostgreSQL per session.

Both are started by the tests on free loopback ports (``natsserver``, ``pgserver``) unless
``VEDETTE_TEST_NATS_URL`` / ``VEDETTE_TEST_POSTGRES_URL`` name servers of your own. Without
them the tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The api process is driven with the embedded tests' helpers (tests/server/serverkit.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from natsserver import NatsServer, nats_url
from pgserver import plain_database, postgres_url
from vedette.store.state.db import APP_DATABASE_ENV


@pytest.fixture(scope="session")
def private_tmp() -> Iterator[Path]:
    """A temporary folder of this session only (not pytest's tmp_path: sessions prune it)."""
    path = Path(tempfile.mkdtemp(prefix="vedette-scaleout-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def work_dir(private_tmp: Path) -> Path:
    """A fresh folder for one test."""
    path = private_tmp / uuid.uuid4().hex[:12]
    path.mkdir()
    return path


def _service(start: Callable[[], tuple[str, Callable[[], None]]], what: str) -> tuple[str, Any]:
    try:
        return start()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no {what}: {exc}")


@pytest.fixture
def nats_server(work_dir: Path) -> Iterator[str]:
    """URL of a NATS server with JetStream (sync_interval: always) of this test alone.

    A centre's stream outlives its processes: two tests sharing a server would share it (a
    new centre would read the last test's batches, or refuse its partition count). An outside
    server (``VEDETTE_TEST_NATS_URL``) has the default stream deleted first instead.
    """
    url, stop = _service(lambda: nats_url(work_dir / "nats-own"), "NATS server")
    try:
        _delete_default_stream(url)
        yield url
    finally:
        stop()


def _delete_default_stream(url: str) -> None:
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def run() -> None:
        client = await nats.connect(url)
        try:
            await client.jetstream().delete_stream("VEDETTE_EVENTS")
        except NotFoundError:
            pass
        finally:
            await client.close()

    asyncio.run(run())


@pytest.fixture
def own_nats(work_dir: Path) -> Iterator[NatsServer]:
    """A NATS server of this test alone (for tests that kill or restart it)."""
    server = NatsServer(root=work_dir / "nats", port=_free_port())
    server.root.mkdir(parents=True)
    try:
        server.start()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no NATS server: {exc}")
    try:
        yield server
    finally:
        server.stop()


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server(private_tmp: Path) -> Iterator[str]:
    """URL of a PostgreSQL server for the session."""
    url, stop = _service(lambda: postgres_url(private_tmp / "postgres"), "PostgreSQL server")
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def database(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new empty database on the session's server (dropped after the test), owned by a plain
    role as in a deployment, so row-level security applies (a superuser bypasses it); the api's
    scoped sessions log in as an app role (``VEDETTE_APP_DATABASE_URL``, inherited by every
    process the test starts). See ``pgserver.plain_database``."""
    roles = plain_database(postgres_server)
    monkeypatch.setenv(APP_DATABASE_ENV, roles.app_url)
    try:
        yield roles.owner_url
    finally:
        roles.drop()


@pytest.fixture
def stream_name() -> str:
    """A stream name of this test alone (tests share the session's NATS server)."""
    return f"VT_{uuid.uuid4().hex[:12].upper()}"
