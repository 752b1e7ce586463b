"""A scale-out centre for tests: ``--role api``, N ``--role worker``, a ``--role scheduler``
and a ``--role notifier`` process (more of each when a test asks).

Each is the installed command in a subprocess, on a real NATS (JetStream) and a real
PostgreSQL; an api is a ``serverkit.Centre`` (same HTTP helpers as the embedded tests), the
other roles are plain processes a test may SIGKILL and start again (``RoleProcess``, the same
as the contract pass's scale-out set, tests/server/scaleoutkit.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scaleoutkit import RoleProcess
from serverkit import Centre, admin, free_port

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"


WorkerProcess = RoleProcess
"""The name the worker tests use."""


@dataclass
class Cluster:
    """The apis, workers, schedulers and notifiers of one scale-out centre."""

    root: Path
    nats: str
    database: str
    partitions: int = 4
    lease_seconds: float = 3.0
    rules: Sequence[str] = (str(STARTER),)
    api: Centre = field(init=False)
    apis: list[Centre] = field(default_factory=list)
    workers: list[RoleProcess] = field(default_factory=list)
    schedulers: list[RoleProcess] = field(default_factory=list)
    notifiers: list[RoleProcess] = field(default_factory=list)
    extra_args: Sequence[str] = ()
    """More flags for every process (--intel, --warning-policy, ...)."""

    def __post_init__(self) -> None:
        self.store = self.root / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.api = self.add_api()

    def common_args(self) -> list[str]:
        """What every role is told: NATS, PostgreSQL, the shared store, partitions, rules."""
        args = ["--nats", self.nats, "--database", self.database, "--store", str(self.store)]
        args += ["--partitions", str(self.partitions)]
        for rule in self.rules:
            args += ["--rules", rule]
        return [*args, *self.extra_args]

    def add_api(self) -> Centre:
        """One more api process (HTTP on a port of its own), not started."""
        home = self.root / ("api" if not self.apis else f"api-{len(self.apis)}")
        home.mkdir(parents=True, exist_ok=True)
        api = Centre(
            home=home,
            port=free_port(),
            args=["--role", "api", *self.common_args()],
        )
        self.apis.append(api)
        return api

    def admin(self, *args: str) -> str:
        """``vedette admin`` against the shared database."""
        return admin(self.api.home, *args, database=self.database)

    def add_units(self, units: Sequence[tuple[str, str | None]]) -> None:
        """Units (name, parent) in the shared database."""
        for name, parent in units:
            self.admin("unit", "add", name, *(["--parent", parent] if parent else []))

    def token(self, unit: str, role: str) -> str:
        """A new token (printed alone on the last line)."""
        return self.admin("token", "add", "--unit", unit, "--role", role).strip().splitlines()[-1]

    def _role(self, role: str, into: list[RoleProcess]) -> RoleProcess:
        process = RoleProcess(
            home=self.root / f"{role}-{len(into)}",
            args=[*self.common_args(), "--lease-seconds", str(self.lease_seconds)],
            role=role,
        )
        into.append(process)
        return process

    def add_worker(self) -> RoleProcess:
        """A worker process, not started."""
        return self._role("worker", self.workers)

    def add_scheduler(self) -> RoleProcess:
        """A scheduler process, not started."""
        return self._role("scheduler", self.schedulers)

    def add_notifier(self) -> RoleProcess:
        """A notifier process, not started."""
        return self._role("notifier", self.notifiers)

    def start(self, workers: int = 2, schedulers: int = 1, notifiers: int = 1) -> Cluster:
        """Start the apis (each ready when /readyz answers), ``workers`` workers,
        ``schedulers`` schedulers and ``notifiers`` notifiers (restarting those of an earlier
        start rather than adding more)."""
        for api in self.apis:
            api.start()
        for wanted, have, add in (
            (workers, self.workers, self.add_worker),
            (schedulers, self.schedulers, self.add_scheduler),
            (notifiers, self.notifiers, self.add_notifier),
        ):
            for process in have[:wanted]:
                process.start()
            for _ in range(wanted - len(have)):
                add().start()
        return self

    def processes(self) -> list[RoleProcess]:
        """Every process without HTTP."""
        return [*self.workers, *self.schedulers, *self.notifiers]

    def wait_spread(self, timeout: float = 60.0) -> None:
        """Wait until the live workers hold every partition between them, none idle."""
        deadline = time.monotonic() + timeout
        live: list[RoleProcess] = []
        while time.monotonic() < deadline:
            live = [w for w in self.workers if w.alive()]
            held = [p for w in live for p in w.held()]
            if sorted(held) == list(range(self.partitions)) and all(w.held() for w in live):
                return
            time.sleep(0.2)
        raise AssertionError(
            "partitions not spread: " + "; ".join(f"{w.held()} {w.log()[-2000:]}" for w in live)
        )

    def wait_scheduler(self, timeout: float = 60.0) -> RoleProcess:
        """Wait until one live scheduler runs the duties; that one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = [s for s in self.schedulers if s.alive() and s.active()]
            if active:
                assert len(active) == 1, self.logs()
                return active[0]
            time.sleep(0.2)
        raise AssertionError(f"no scheduler active: {self.logs()}")

    def kill_all(self) -> None:
        """SIGKILL everything (the end of a test, whatever happened)."""
        for process in self.processes():
            process.kill()
        for api in self.apis:
            api.kill()

    def stop_all(self) -> list[int]:
        """SIGTERM everything; the exit statuses (workers, schedulers, notifiers, apis)."""
        codes = [p.stop() for p in self.processes()]
        return [*codes, *(api.stop() for api in self.apis)]

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        parts = [f"--- {api.home.name}\n{api.log()[-4000:]}" for api in self.apis]
        parts += [f"--- {p.home.name}\n{p.log()[-4000:]}" for p in self.processes()]
        return "\n".join(parts)
