"""How one monitoring centre runs: addresses, rules, limits. Safe defaults for one machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vedette.paths import ServerHome
from vedette.server.syslog_listen import SyslogListenerConfig


@dataclass(slots=True, kw_only=True)
class ServeConfig:
    """Everything ``vedette serve`` is told; every limit has a default that protects the host."""

    home: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8400
    database_url: str | None = None
    """State database; default: SQLite ``state.db`` in the home folder."""
    syslog: list[SyslogListenerConfig] = field(default_factory=list)
    rule_paths: list[Path] = field(default_factory=list)
    """Sigma rule files or folders; default: the rules ``vedette scan`` uses."""
    intel_paths: list[Path] = field(default_factory=list)
    placeholders: Path | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body, after gzip inflation (413 past it)."""
    max_batch_events: int = 50_000
    high_water_events: int = 2_000_000
    """Spool depth (acknowledged, not yet processed) past which ingest answers 503."""
    unit_quota_eps: float = 50_000.0
    """Sustained events per second a unit may send before 429 (its burst is 10 s of it)."""
    dedup_window_seconds: float = 3600.0
    retention_days: int = 90
    silent_check_seconds: float = 60.0
    login_attempts: int = 5
    session_idle_seconds: float = 8 * 3600.0
    """A user's session unused this long is over (vedette.store.state.sessions)."""
    session_lifetime_seconds: float = 7 * 24 * 3600.0
    """A user's session is over this long after login, used or not."""
    warning_policy: Path | None = None
    """Early-warning policy (YAML); default: vedette.alerts.warning's documented defaults."""
    worker_process: bool = False
    """Run the embedded worker in a child process (vedette.server.worker_process)."""
    compact_seconds: float = 600.0
    """How often housekeeping merges small event files (vedette.store.compact); 0: never."""
    compact_target_bytes: int = 128 * 1024 * 1024
    """A merged event file grows up to about this size."""
    compact_target_rows: int | None = None
    """And up to this many rows, when set."""

    @property
    def paths(self) -> ServerHome:
        """The home folder's layout."""
        return ServerHome(self.home)

    @property
    def state_url(self) -> str:
        """The state database URL actually used."""
        return self.database_url or self.paths.state_url
