"""Fixtures: every state-store test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per session (``pgserver.start_postgres``) unless
``VEDETTE_TEST_POSTGRES_URL`` names one; each test gets a database of its own. Without a
server the PostgreSQL half skips, except under ``CI``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from pgserver import postgres_url
from vedette.store.state import (
    Principal,
    Role,
    Scope,
    StateDB,
    add_token,
    add_unit,
    authenticate_token,
    open_state,
    scope_for,
)


@pytest.fixture(scope="session")
def private_tmp() -> Iterator[Path]:
    """A temporary folder of this session only.

    Not pytest's ``tmp_path``: several test sessions share /tmp/pytest-of-<user>, and each
    prunes the older numbered folders there, which would delete a server's data under it.
    """
    path = Path(tempfile.mkdtemp(prefix="vedette-state-tests-"))
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


@pytest.fixture(scope="session")
def postgres_server(private_tmp: Path) -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session."""
    try:
        url, stop = postgres_url(private_tmp / "postgres")
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield url
    finally:
        stop()


def _fresh_database(server_url: str) -> tuple[str, Callable[[], None]]:
    name = f"vt_{uuid.uuid4().hex[:16]}"
    admin = make_url(server_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return admin.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, work_dir: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{work_dir / 'state.db'}"
        return
    url, drop = _fresh_database(request.getfixturevalue("postgres_server"))
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def db(state_url: str, work_dir: Path) -> Iterator[StateDB]:
    """The store opened (and created) at ``state_url``."""
    state = open_state(state_url, backup_dir=work_dir / "backups")
    try:
        yield state
    finally:
        state.close()


@dataclass
class World:
    """A unit tree ``centre -> north -> north-a`` and ``centre -> south``, with unit ids."""

    db: StateDB
    ids: dict[str, int]

    def scope(self, unit: str, role: Role | str) -> Scope:
        """The scope of a fresh token of ``unit`` with ``role``, through authentication."""
        with self.db.session() as session:
            _, secret = add_token(session, unit=unit, role=role)
        with self.db.session() as session:
            principal: Principal = authenticate_token(session, secret)
            return scope_for(session, principal)

    def session(self) -> Session:
        """A plain session (the caller commits)."""
        return Session(self.db.engine, expire_on_commit=False)


@pytest.fixture
def world(db: StateDB) -> World:
    """The four-unit tree."""
    with db.session() as session:
        ids = {}
        for name, parent in [
            ("centre", None),
            ("north", "centre"),
            ("north-a", "north"),
            ("south", "centre"),
        ]:
            ids[name] = add_unit(session, name=name, parent=parent, actor="test").id
    return World(db=db, ids=ids)
