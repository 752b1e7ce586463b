"""The scale-out set behind the embedded tests' ``make_centre``: ``VEDETTE_TEST_CENTRE=scaleout``.

With the switch set, ``serverkit.make_centre`` returns a :class:`ScaleoutCentre`: an
``--role api`` process on the centre's HTTP port, two ``--role worker`` processes and a
``--role scheduler``, each the installed command in a subprocess, on a NATS server (JetStream)
of the centre's own and a database of its own on PostgreSQL; ``serverkit.admin`` runs
``vedette admin --database`` there. It has the embedded centre's interface (``url``, ``start``,
``stop``, ``kill``, ``log``, ``client``, ``wait_stored``), so the contract tests run unchanged.

Made for speed (the pass runs in CI beside the embedded one):

- one PostgreSQL per test process, started on first use, and a template database with the
  migrations applied: a centre's database is a ``CREATE DATABASE ... TEMPLATE`` (a few tens of
  ms) instead of a migration run;
- a NATS server per centre (about 0.1 s; the stream names are fixed, so two centres alive at
  once in a test must not share one);
- the role processes start at once, not one after the other, and stop at once;
- every role of every centre shares one compiled-rule cache, so a worker loads the rules the
  api compiled instead of compiling them again.

The databases are owned by a plain (non-superuser) role and the api's scoped sessions log in
as an app role (``VEDETTE_APP_DATABASE_URL``), as in a deployment (``pgserver.plain_database``):
row-level security applies to every contract test, where a superuser would bypass each policy.

``VEDETTE_TEST_POSTGRES_URL`` names a PostgreSQL server of your own (``pgserver``).

:class:`RoleProcess` is also the process of ``tests/scaleout/scalekit.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from natsserver import start_nats
from pgserver import ENV_URL, PlainRoles, PostgresServer, plain_database
from vedette.store.state.db import APP_DATABASE_ENV

SCALEOUT = os.environ.get("VEDETTE_TEST_CENTRE", "embedded") == "scaleout"
"""Whether ``make_centre`` starts the scale-out set (``VEDETTE_TEST_CENTRE=scaleout``)."""

VEDETTE = [sys.executable, "-m", "vedette"]
WORKERS = 2
PARTITIONS = 4
LEASE_SECONDS = 3.0

_DATABASES: dict[Path, str] = {}
"""The database of each scale-out centre's home: ``serverkit.admin`` runs there."""

_lock = threading.Lock()
_session: _Session | None = None


@dataclass
class _Session:
    """What the centres of one test process share: PostgreSQL, the roles, the template, the rule
    cache."""

    root: Path
    server_url: str
    """A superuser's: databases are made and dropped through it, nothing else."""
    roles: PlainRoles
    """The owner and app roles, and the template database they were made with."""
    stop: Callable[[], None]

    @property
    def rule_cache(self) -> Path:
        return self.root / "rule-cache"

    @property
    def template(self) -> str:
        return str(make_url(self.roles.owner_url).database)

    @property
    def owner(self) -> str:
        return str(make_url(self.roles.owner_url).username)

    def conninfo(self, database: str | None = None) -> str:
        """The superuser's (``database``: the server's default one)."""
        return _at(self.server_url, database)

    def owner_url(self, database: str) -> str:
        """The owner role's: migrations, workers, scheduler, ``vedette admin``."""
        return _at(self.roles.owner_url, database)

    def app_url(self, database: str) -> str:
        """The app role's: the api's scoped sessions."""
        return _at(self.roles.app_url, database)


def _at(url: str, database: str | None) -> str:
    at = make_url(url).set(drivername="postgresql")
    if database is not None:
        at = at.set(database=database)
    return at.render_as_string(hide_password=False)


def _start_session() -> _Session:
    root = Path(tempfile.mkdtemp(prefix="vedette-contract-"))
    given = os.environ.get(ENV_URL)
    if given:
        server_url, stop_server = given, lambda: None
    else:
        # Not pgserver.start_postgres: its 60 connections are too few for two centres of five
        # processes each alive at once (a test with a reference centre).
        server = PostgresServer(root / "postgres", max_connections=300).init().start()
        server_url, stop_server = server.url, server.stop
    # The template is the plain owner's database, migrated by the owner: the policies name the
    # role that ran the migrations, and every copy keeps that owner (CREATE DATABASE ... OWNER).
    roles = plain_database(server_url)
    session = _Session(root=root, server_url=server_url, roles=roles, stop=stop_server)
    session.rule_cache.mkdir()
    # The migrations, once: every centre's database is a copy of this one.
    done = subprocess.run(
        [*VEDETTE, "admin", "--home", str(root / "template-home"), "--database",
         session.owner_url(session.template), "unit", "list"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"migrating the template database failed: {done.stderr}")

    stopped = threading.Event()

    def stop() -> None:
        with _lock:
            if stopped.is_set():
                return  # at the session's end, then again at exit
            stopped.set()
            _drop_owned(session)
            # The server's own stop: session.stop is this function (calling it would wait on
            # _lock for ever, at exit of a run without xdist).
            stop_server()
            shutil.rmtree(root, ignore_errors=True)

    session.stop = stop
    atexit.register(stop)
    return session


def _drop_owned(session: _Session) -> None:
    """Every database of the owner (a centre's left at exit, the template), then the roles: a
    role that owns a database cannot be dropped."""
    with contextlib.suppress(psycopg.Error):  # the server is going away anyway
        with psycopg.connect(session.conninfo(), autocommit=True) as conn:
            owned = conn.execute(
                "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
                " WHERE r.rolname = %s",
                (session.owner,),
            ).fetchall()
        for (name,) in owned:
            _drop(session, name)
        session.roles.drop()


def _drop(session: _Session, database: str) -> None:
    try:
        with psycopg.connect(session.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    except psycopg.Error:
        pass  # the server is going away anyway


def session() -> _Session:
    """This test process's PostgreSQL and template (started on first use)."""
    global _session
    with _lock:
        if _session is None:
            _session = _start_session()
        return _session


def stop_session() -> None:
    """Stop this test process's PostgreSQL and drop its databases, if it started them (at the
    end of the test session: an xdist worker leaves without running atexit handlers, and its
    PostgreSQL outlived the run)."""
    global _session
    started = _session
    if started is not None:
        started.stop()
        _session = None


def database_of(home: Path) -> str | None:
    """The database of the scale-out centre at ``home`` (None: an embedded home)."""
    return _DATABASES.get(Path(home))


@dataclass
class RoleProcess:
    """One ``vedette serve --role ROLE`` without HTTP (worker, scheduler, notifier)."""

    home: Path
    args: list[str]
    role: str = "worker"
    env: dict[str, str] = field(default_factory=dict)
    """Set in the process's environment over this one's."""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0

    def start(self) -> RoleProcess:
        """Start (or restart) the process; returns at once (it claims its work on its own)."""
        self.starts += 1
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / f"{self.role}-{self.starts}.log"
        self.process = subprocess.Popen(
            [*VEDETTE, "serve", "--role", self.role, "--home", str(self.home), *self.args],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        return self

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def alive(self) -> bool:
        """Started and not exited."""
        return self.process is not None and self.process.poll() is None

    def held(self) -> list[int]:
        """The partitions a worker last said it holds."""
        lines = [line for line in self.log().splitlines() if "holds partitions" in line]
        if not lines:
            return []
        inside = lines[-1].rsplit("[", 1)[1].rstrip("]")
        return [int(p) for p in inside.split(",") if p.strip()]

    def active(self) -> bool:
        """A scheduler that last said it runs the duties (this start's log)."""
        lines = [
            ln for ln in self.log().splitlines() if " active (epoch " in ln or "standing by" in ln
        ]
        return bool(lines) and " active (epoch " in lines[-1]

    def kill(self) -> None:
        """SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@dataclass
class ScaleoutCentre:
    """api + ``WORKERS`` workers + a scheduler, restartable on the same NATS and database.

    Duck-typed like ``serverkit.Centre`` (a subclass would drag its ``start`` along)."""

    home: Path
    port: int
    args: list[str] = field(default_factory=list)
    database: str = ""
    """The owner role's URL of the centre's database."""
    app_database: str = ""
    """The app role's URL of it (``VEDETTE_APP_DATABASE_URL`` of every process)."""
    nats: str = ""
    process: subprocess.Popen[bytes] | None = None
    """The api process."""
    log_path: Path | None = None
    starts: int = 0
    roles: list[RoleProcess] = field(default_factory=list)
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """Every process ever started (killed when the centre is let go of)."""

    @property
    def url(self) -> str:
        """Base URL of the api's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> Path:
        """The shared event store (where the embedded centre keeps its own)."""
        return self.home / "events"

    def _common(self) -> list[str]:
        return [
            "--nats", self.nats, "--database", self.database, "--store", str(self.store),
            "--partitions", str(PARTITIONS), "--lease-seconds", str(LEASE_SECONDS), *self.args,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        # As in a deployment: the api's scoped sessions on the app role (the others only
        # open system sessions, on the owner's --database).
        return {APP_DATABASE_ENV: self.app_database}

    def _share_cache(self, home: Path) -> None:
        # The compiled rules are keyed by the pattern set and written atomically: every role
        # may use one folder, and only the first process to need a set compiles it.
        home.mkdir(parents=True, exist_ok=True)
        cache = home / "cache"
        if not cache.exists():
            cache.symlink_to(session().rule_cache, target_is_directory=True)

    def start(self, timeout: float = 120.0) -> ScaleoutCentre:
        """Start (or restart) every process and wait until the api's /readyz answers 200, the
        workers hold every partition between them and the scheduler runs the duties."""
        self.starts += 1
        if not self.roles:
            roles_home = self.home.parent / f"{self.home.name}.roles"
            for n in range(WORKERS):
                self.roles.append(RoleProcess(roles_home / f"worker-{n}", [], "worker"))
            self.roles.append(RoleProcess(roles_home / "scheduler-0", [], "scheduler"))
        env = self._env()
        for role in self.roles:
            role.args = self._common()
            role.env = env
            self._share_cache(role.home)
        self._share_cache(self.home)
        self.log_path = self.home / f"serve-{self.starts}.log"
        self.process = subprocess.Popen(
            [*VEDETTE, "serve", "--role", "api", "--home", str(self.home),
             "--http", f"127.0.0.1:{self.port}", *self._common()],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )  # fmt: skip
        self.spawned.append(self.process)
        for role in self.roles:
            role.start()
            assert role.process is not None
            self.spawned.append(role.process)
        deadline = time.monotonic() + timeout
        ready = False
        while time.monotonic() < deadline:
            self._check_alive()
            if not ready:
                with contextlib.suppress(httpx.HTTPError):
                    ready = httpx.get(self.url + "/readyz", timeout=2).status_code == 200
            workers = [r for r in self.roles if r.role == "worker"]
            held = sorted(p for w in workers for p in w.held())
            scheduled = all(r.active() for r in self.roles if r.role == "scheduler")
            if ready and held == list(range(PARTITIONS)) and scheduled:
                return self
            time.sleep(0.1)
        raise AssertionError(f"scale-out set not ready in {timeout} s: {self.log()}")

    def _check_alive(self) -> None:
        for name, process in self._processes():
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{name} exited ({process.returncode}): {self.log()}")

    def _processes(self) -> list[tuple[str, subprocess.Popen[bytes] | None]]:
        return [("api", self.process), *((r.home.name, r.process) for r in self.roles)]

    def log(self) -> str:
        """What every process printed so far (the api's in full, the others' tails)."""
        api = self.log_path.read_text(errors="replace") if self.log_path else ""
        parts = [api, *(f"--- {r.home.name}\n{r.log()[-6000:]}" for r in self.roles)]
        return "\n".join(parts)

    def kill(self) -> None:
        """SIGKILL every process: no chance to flush or clean up."""
        live = [p for _, p in self._processes() if p is not None and p.poll() is None]
        for process in live:
            process.send_signal(signal.SIGKILL)
        for process in live:
            process.wait(30)

    def stop(self) -> int:
        """SIGTERM every process at once and wait; 0 when every one exited 0 (else the first
        other status)."""
        live = [p for _, p in self._processes() if p is not None and p.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        for process in live:
            process.wait(60)
        codes = [p.returncode for _, p in self._processes() if p is not None]
        return next((code for code in codes if code != 0), 0)

    def client(self, token: str) -> httpx.Client:
        """An HTTP client of the api with the token as bearer."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def wait_stored(
        self, token: str, unit: str, count: int, timeout: float = 60.0
    ) -> dict[str, object]:
        """Wait until ``unit`` shows ``count`` events stored; its unit record."""
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        with self.client(token) as http:
            while time.monotonic() < deadline:
                units = http.get("/api/v1/units").json()["items"]
                last = next((u for u in units if u["name"] == unit), {})
                stored = last.get("events_stored", 0)
                if isinstance(stored, int) and stored >= count:
                    return last
                time.sleep(0.2)
        raise AssertionError(f"unit {unit} stored {last} of {count} events: {self.log()}")


def new_centre(home: Path, port: int, args: Sequence[str]) -> ScaleoutCentre:
    """A scale-out centre for ``home``: its database (from the template) and NATS server;
    nothing started. Its units and tokens go through ``serverkit.admin``."""
    shared = session()
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    name = f"vs_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(shared.conninfo(), autocommit=True) as conn:
        conn.execute(
            f'CREATE DATABASE "{name}" OWNER "{shared.owner}" TEMPLATE "{shared.template}"'
        )
    nats, stop_nats = start_nats(shared.root / "nats" / name)
    centre = ScaleoutCentre(
        home=home,
        port=port,
        args=list(args),
        database=shared.owner_url(name),
        app_database=shared.app_url(name),
        nats=nats,
    )
    _DATABASES[home] = centre.database
    # Once the test lets go of the centre: whatever still runs is killed, its NATS server
    # stopped and its database dropped (at the latest when the test process exits).
    weakref.finalize(centre, _release, centre.spawned, home, name, stop_nats)
    return centre


def _release(
    spawned: list[subprocess.Popen[bytes]], home: Path, name: str, stop_nats: Callable[[], None]
) -> None:
    for process in spawned:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    with contextlib.suppress(Exception):  # at exit: the server goes with the process anyway
        stop_nats()
    _DATABASES.pop(home, None)
    if _session is not None:
        _drop(_session, name)
