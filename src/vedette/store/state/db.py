"""Open the state store: engine, schema check, backup and migration, sessions.

``open_state(url)`` creates an empty database at the newest schema, backs up and upgrades an
older one, and refuses one newer than this code (:class:`SchemaTooNew`). On SQLite the backup is
a consistent copy made with SQLite's online backup API; on PostgreSQL the store cannot copy the
server, so it logs that the operator's own backup (``pg_dump``, a snapshot) is assumed to exist.

SQLite runs in WAL mode with foreign keys on, and every session transaction starts with
``BEGIN IMMEDIATE`` unless the session is read-only: writers queue on the write lock (with a
busy timeout) instead of failing late, which is also what keeps the audit chain linear.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, SessionTransaction

from vedette.errors import VedetteError

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 15_000
_READONLY = "vedette_readonly"


class SchemaTooNew(VedetteError):
    """The database was migrated by a newer Vedette than this one."""


class SchemaError(VedetteError):
    """The database holds tables that are not a Vedette state store."""


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` and ``postgres://`` URLs."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged revisions (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files(__package__) / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, foreign_keys: bool) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" hook below issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # FULL: a commit that carries a consumer position must survive a power cut too.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    readonly = conn.get_execution_options().get(_READONLY, False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


# --- Row-level security (PostgreSQL, migration 0008) ----------------------------------------
# A request that authenticated sets its units here (server/authz.py); every transaction of a
# session opened while it is set runs with ``vedette.unit_ids`` set locally and the bypass off,
# on the app role's engine when one is configured. Sessions opened without it are system ones.

APP_DATABASE_ENV = "VEDETTE_APP_DATABASE_URL"
"""Environment variable: URL of a non-owner role (member of ``vedette_app``) for scoped sessions."""

_request_units: ContextVar[frozenset[int] | None] = ContextVar("vedette_units", default=None)

SCOPED = "vedette_scoped"
"""Key of ``Session.info``: True in a session whose transactions run with a request's scope
(PostgreSQL), for the repository code that must take another path under row-level security."""


def set_request_units(unit_ids: frozenset[int]) -> None:
    """Scope every state session opened later in this context (one API request) to ``unit_ids``."""
    _request_units.set(frozenset(unit_ids))


def _system_connect(dbapi_connection: Any, _record: Any) -> None:
    # Honoured by the policies only for the owner role: see migration 0008.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET vedette.bypass = 'on'")
    cursor.close()
    dbapi_connection.commit()


_SCOPE_UNITS = "vedette_scope_units"
"""Key of ``Session.info``: the units a scoped session's transactions run with (a set)."""


def _scope_transaction(session: Session, _tx: SessionTransaction, conn: Connection) -> None:
    conn.execute(
        text(
            "SELECT set_config('vedette.unit_ids', :ids, true),"
            " set_config('vedette.bypass', 'off', true)"
        ),
        {"ids": _ids(session.info[_SCOPE_UNITS])},
    )


def _ids(unit_ids: set[int]) -> str:
    return ",".join(str(u) for u in sorted(unit_ids))


def widen_scope(session: Session, unit_ids: set[int], *, under: int | None = None) -> None:
    """Add ``unit_ids`` to a scoped session's scope, from its current transaction on (a no-op
    in a system session; with ``under``, also when the scope does not hold that unit). For
    repository code that checked the caller may act on them and whose rows the request's
    scope does not hold yet: a unit the request made below its own, the warned unit of a
    draft the caller approves."""
    units = session.info.get(_SCOPE_UNITS)
    if units is None or unit_ids <= units or (under is not None and under not in units):
        return
    units |= unit_ids
    if session.in_transaction():
        session.execute(
            text("SELECT set_config('vedette.unit_ids', :ids, true)"), {"ids": _ids(units)}
        )


# ----------------------------------------------------------------------------------------------


def _stall_timeout(ms: int, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET idle_in_transaction_session_timeout = {int(ms)}")
    cursor.close()
    dbapi_connection.commit()


def make_engine(
    url: str, *, foreign_keys: bool = True, system: bool = True, stall_timeout: float | None = None
) -> Engine:
    """An engine for ``url`` with the store's connection settings.

    ``foreign_keys=False`` is for migrations only: SQLite's batch mode drops and recreates
    tables, and with foreign keys enforced a drop would cascade into the rows that refer to it.
    ``system`` (PostgreSQL): every connection asks for the row-level-security bypass, which the
    policies grant to the owner role only; ``False`` for the app role's engine.
    ``stall_timeout`` (PostgreSQL, seconds): the server ends a session idle inside a
    transaction for that long, so a process frozen while it holds row locks (lease rows) does
    not block the others past its lease.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", partial(_sqlite_pragmas, foreign_keys=foreign_keys))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if system:
        event.listen(engine, "connect", _system_connect)
    if stall_timeout is not None:
        ms = max(1000, int(stall_timeout * 1000))
        event.listen(engine, "connect", partial(_stall_timeout, ms))
    return engine


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or went away (a restart, a
    failover, a network cut), not that the statement was wrong: worth a retry later."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class StateDB:
    """An open state store: an engine at the current schema, and sessions over it."""

    def __init__(self, engine: Engine, scoped_engine: Engine | None = None) -> None:
        self.engine = engine
        self.scoped_engine = scoped_engine
        """PostgreSQL: the non-owner role's engine for sessions of a scoped request."""
        self._readonly_engine = engine.execution_options(**{_READONLY: True})

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False, system: bool = False) -> Iterator[Session]:
        """One session for one request or job: committed on a clean exit, rolled back on error.

        ``readonly`` lets SQLite readers run beside a writer instead of queueing for its lock.
        On SQLite a write session holds the database write lock from its start, so do not open
        a second write session while one is open in the same thread: it waits, then fails.
        ``system``: a system session even inside a scoped request, for a check that must read
        every row and hands none to the caller (the audit chain's verification).
        """
        bind = self._readonly_engine if readonly else self.engine
        units = _request_units.get() if self.dialect == "postgresql" and not system else None
        if units is not None:
            bind = self.scoped_engine or self.engine
        with Session(bind, expire_on_commit=False) as session:
            if units is not None:
                session.info[SCOPED] = True
                session.info[_SCOPE_UNITS] = set(units)
                event.listen(session, "after_begin", _scope_transaction)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.scoped_engine is not None:
            self.scoped_engine.dispose()


def _current_revision(engine: Engine) -> tuple[str | None, set[str]]:
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        tables = set(inspect(conn).get_table_names())
    return revision, tables


def _backup_sqlite(engine: Engine, revision: str, backup_dir: Path | None) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    source_path = Path(database)
    target_dir = backup_dir if backup_dir is not None else source_path.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = target_dir / f"state-{revision}-{stamp}.db"
    source = sqlite3.connect(source_path)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
    return target


def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (no backup, no checks: ``open_state`` does those)."""
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
            if engine.dialect.name == "sqlite":
                # The check batch mode skipped while foreign keys were off.
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if bad:
                    raise SchemaError(f"foreign keys broken by the migration: {bad[:5]}")
    finally:
        engine.dispose()


def open_state(
    url: str,
    *,
    backup_dir: Path | None = None,
    scoped_url: str | None = None,
    stall_timeout: float | None = None,
) -> StateDB:
    """Open the state store at ``url``, creating or migrating its schema first.

    ``url`` is ``sqlite:///path`` or ``postgresql://...``. An older schema is backed up
    (SQLite: ``backup_dir/state-<rev>-<timestamp>.db``, by default beside the database; on
    PostgreSQL the operator's backup is assumed and logged) and then upgraded to the head.
    ``stall_timeout``: see :func:`make_engine` (the lease-holding roles give their lease).
    """
    engine = make_engine(url, stall_timeout=stall_timeout)
    try:
        script = ScriptDirectory.from_config(alembic_config())
        head = script.get_current_head()
        revision, tables = _current_revision(engine)
        if revision is None:
            if "units" in tables or "alerts" in tables:
                raise SchemaError(f"{engine.url.render_as_string()}: tables without a version")
            upgrade(url, "head")
        elif revision != head:
            try:
                script.get_revision(revision)
            except CommandError as exc:
                raise SchemaTooNew(
                    f"the state database is at schema revision {revision!r}, newer than this "
                    f"Vedette knows (newest {head!r}); upgrade Vedette or restore a backup"
                ) from exc
            _backup_and_upgrade(engine, url, revision, backup_dir)
    except BaseException:
        engine.dispose()
        raise
    scoped_url = scoped_url or os.environ.get(APP_DATABASE_ENV) or None
    scoped = None
    if scoped_url and engine.dialect.name == "postgresql":
        scoped = make_engine(scoped_url, system=False)
    return StateDB(engine, scoped)


def _backup_and_upgrade(engine: Engine, url: str, revision: str, backup_dir: Path | None) -> None:
    if engine.dialect.name == "sqlite":
        target = _backup_sqlite(engine, revision, backup_dir)
        log.warning("state store at revision %s: backed up to %s, upgrading", revision, target)
    else:
        log.warning(
            "state store at revision %s: upgrading; an operator backup of the PostgreSQL "
            "database is assumed (Vedette cannot copy the server itself)",
            revision,
        )
    upgrade(url, "head")
