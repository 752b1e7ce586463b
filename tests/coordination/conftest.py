"""The server test kit importable here, and state-store URLs on SQLite and PostgreSQL."""

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

from pgserver import postgres_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (skips without one, fails under CI)."""
    # Not tmp_path: pytest prunes old numbered folders that a running server may live in.
    home = Path(tempfile.mkdtemp(prefix="vedette-coordination-pg-"))
    try:
        try:
            url, stop = postgres_url(home / "postgres")
        except Exception as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"no PostgreSQL server: {exc}")
        try:
            yield url
        finally:
            stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty state database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    admin = make_url(request.getfixturevalue("pg_server")).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"vc_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
