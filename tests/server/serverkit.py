"""A real ``vedette serve`` for tests: its own home, units and tokens, on free loopback ports.

The server is the installed command in a subprocess, reached over real HTTP; tests may
SIGKILL it and start it again on the same home. Units and tokens are made with the real
``vedette admin`` command, as an operator would.

``VEDETTE_TEST_CENTRE=scaleout`` makes ``make_centre`` start the scale-out set instead (api +
2 workers + scheduler on NATS and PostgreSQL, ``scaleoutkit``) with the same interface, and
``admin`` run against that centre's database: the contract tests run unchanged on both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import scaleoutkit

VEDETTE = [sys.executable, "-m", "vedette"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(home: Path, *args: str, database: str | None = None) -> str:
    """Run ``vedette admin --home HOME ARGS``; its standard output (fails the test on error).
    A scale-out centre's home runs against the centre's database."""
    database = database or scaleoutkit.database_of(home)
    extra = ["--database", database] if database else []
    done = subprocess.run(
        [*VEDETTE, "admin", "--home", str(home), *extra, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "VEDETTE_PASSWORD": "correct horse battery staple"},
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"vedette admin {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def add_token(home: Path, unit: str, role: str, *, database: str | None = None) -> str:
    """A new token; ``token add`` prints it alone on its last line."""
    return (
        admin(home, "token", "add", "--unit", unit, "--role", role, database=database)
        .strip()
        .splitlines()[-1]
    )


@dataclass
class Centre:
    """A running ``vedette serve`` (restartable on the same home and ports)."""

    home: Path
    port: int
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Centre:
        """Start (or restart) the server and wait until /readyz answers 200."""
        self.starts += 1
        self.log_path = self.home / f"serve-{self.starts}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *VEDETTE,
                "serve",
                "--home",
                str(self.home),
                "--http",
                f"127.0.0.1:{self.port}",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"vedette serve exited: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"vedette serve not ready in {timeout} s: {self.log()}")

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM and wait: the clean stop; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def client(self, token: str) -> httpx.Client:
        """An HTTP client with the token as bearer."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def wait_stored(
        self, token: str, unit: str, count: int, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until ``unit`` shows ``count`` events stored; its unit record."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        with self.client(token) as http:
            while time.monotonic() < deadline:
                units = http.get("/api/v1/units").json()["items"]
                last = next((u for u in units if u["name"] == unit), {})
                if last.get("events_stored", 0) >= count:
                    return last
                time.sleep(0.2)
        raise AssertionError(f"unit {unit} stored {last} of {count} events: {self.log()}")


def make_centre(
    home: Path,
    units: Sequence[tuple[str, str | None]] = (("hq", None), ("branch-a", "hq")),
    args: Sequence[str] = (),
) -> Centre:
    """A home with ``units`` (name, parent), not started; ports chosen free (the scale-out
    set under ``VEDETTE_TEST_CENTRE=scaleout``)."""
    if scaleoutkit.SCALEOUT:
        centre: Any = scaleoutkit.new_centre(home, free_port(), args)
        for name, parent in units:
            admin(home, "unit", "add", name, *(["--parent", parent] if parent else []))
        return centre
    for name, parent in units:
        admin(home, "unit", "add", name, *(["--parent", parent] if parent else []))
    return Centre(home=home, port=free_port(), args=list(args))
