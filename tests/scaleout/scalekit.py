"""A scale-out centre for tests: one ``--role api`` and N ``--role worker`` processes.

Each is the installed command in a subprocess, on a real NATS (JetStream) and a real
PostgreSQL; the api is a ``serverkit.Centre`` (same HTTP helpers as the embedded tests), the
workers are plain processes a test may SIGKILL and start again.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serverkit import VEDETTE, Centre, admin, free_port

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"


@dataclass
class WorkerProcess:
    """One ``vedette serve --role worker``."""

    home: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0

    def start(self) -> WorkerProcess:
        """Start (or restart) the worker; returns at once (it claims partitions on its own)."""
        self.starts += 1
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / f"worker-{self.starts}.log"
        self.process = subprocess.Popen(
            [*VEDETTE, "serve", "--role", "worker", "--home", str(self.home), *self.args],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        """What the worker printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def held(self) -> list[int]:
        """The partitions it last said it holds."""
        lines = [line for line in self.log().splitlines() if "holds partitions" in line]
        if not lines:
            return []
        inside = lines[-1].rsplit("[", 1)[1].rstrip("]")
        return [int(p) for p in inside.split(",") if p.strip()]

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
class Cluster:
    """The api and the workers of one scale-out centre."""

    root: Path
    nats: str
    database: str
    partitions: int = 4
    lease_seconds: float = 3.0
    rules: Sequence[str] = (str(STARTER),)
    api: Centre = field(init=False)
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = self.root / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        common = self.common_args()
        self.api = Centre(home=self.root / "api", port=free_port(), args=["--role", "api", *common])
        self.api.home.mkdir(parents=True, exist_ok=True)

    def common_args(self) -> list[str]:
        """What every role is told: NATS, PostgreSQL, the shared store, partitions, rules."""
        args = ["--nats", self.nats, "--database", self.database, "--store", str(self.store)]
        args += ["--partitions", str(self.partitions)]
        for rule in self.rules:
            args += ["--rules", rule]
        return args

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

    def add_worker(self) -> WorkerProcess:
        """A worker process, not started."""
        worker = WorkerProcess(
            home=self.root / f"worker-{len(self.workers)}",
            args=[*self.common_args(), "--lease-seconds", str(self.lease_seconds)],
        )
        self.workers.append(worker)
        return worker

    def start(self, workers: int = 2) -> Cluster:
        """Start the api (ready when /readyz answers) and ``workers`` workers."""
        self.api.start()
        for _ in range(workers):
            self.add_worker().start()
        return self

    def wait_spread(self, timeout: float = 60.0) -> None:
        """Wait until the live workers hold every partition between them, none idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [w for w in self.workers if w.process and w.process.poll() is None]
            held = [p for w in live for p in w.held()]
            if sorted(held) == list(range(self.partitions)) and all(w.held() for w in live):
                return
            time.sleep(0.2)
        raise AssertionError(
            "partitions not spread: " + "; ".join(f"{w.held()} {w.log()[-2000:]}" for w in live)
        )

    def kill_all(self) -> None:
        """SIGKILL everything (the end of a test, whatever happened)."""
        for worker in self.workers:
            worker.kill()
        self.api.kill()

    def stop_all(self) -> list[int]:
        """SIGTERM everything; the exit statuses (api last)."""
        codes = [w.stop() for w in self.workers]
        return [*codes, self.api.stop()]

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        parts = [f"--- api\n{self.api.log()[-4000:]}"]
        parts += [f"--- {w.home.name}\n{w.log()[-4000:]}" for w in self.workers]
        return "\n".join(parts)
