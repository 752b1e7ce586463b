"""Fixtures of the notification tests: the server test kit (``serverkit``) and the local
receivers importable, and a state database on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
sys.path.insert(0, str(HERE))

from pgserver import postgres_url  # noqa: E402  (tests/ is on the path: tests/conftest.py)


@pytest.fixture(scope="session")
def notify_tmp() -> Iterator[Path]:
    """A folder of this session only (a PostgreSQL server's data lives under it)."""
    path = Path(tempfile.mkdtemp(prefix="vedette-notify-tests-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(notify_tmp: Path) -> Iterator[str]:
    """A PostgreSQL server for the session; skipped without one, except under CI."""
    try:
        url, stop = postgres_url(notify_tmp / "postgres")
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield url
    finally:
        stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty state database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server = make_url(request.getfixturevalue("postgres_server")).set(drivername="postgresql")
    conninfo = server.render_as_string(hide_password=False)
    name = f"vn_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
