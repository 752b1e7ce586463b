"""Where Vedette keeps its files: one place for the data, cache and server home directories.

::

    data_dir()    $VEDETTE_HOME, else $XDG_DATA_HOME/vedette, else %LOCALAPPDATA%\\vedette
                  (Windows), else ~/.local/share/vedette: installed rule sets
    cache_dir()   $XDG_CACHE_HOME/vedette, else ~/.cache/vedette: compiled rules, indicator
                  indexes (safe to delete; rebuilt on demand)
    ServerHome    the folder given to ``vedette serve --home DIR`` and ``vedette admin --home
                  DIR``: everything one monitoring centre keeps, in one place to back up

Commands ask here instead of working the paths out again.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def data_dir() -> Path:
    """The user data directory of Vedette (it may not exist yet)."""
    home = os.environ.get("VEDETTE_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / "vedette"
    local_app_data = os.environ.get("LOCALAPPDATA")
    if sys.platform == "win32" and local_app_data:
        return Path(local_app_data) / "vedette"
    return Path.home() / ".local" / "share" / "vedette"


def cache_dir() -> Path:
    """Compiled-rule and indicator caches: ``$XDG_CACHE_HOME/vedette`` or ``~/.cache/vedette``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vedette"


@dataclass(slots=True, frozen=True)
class ServerHome:
    """The layout of a monitoring centre's home folder.

    ``state.db`` holds units, users, tokens, alerts and the audit trail (SQLite, unless a
    database URL is given); ``spool/`` the acknowledged but not yet processed batches;
    ``events/`` the Parquet event store; ``backups/`` the state copies taken before a schema
    migration; ``cache/`` compiled rules; ``tls/`` nothing by default (a place for certificates).
    """

    root: Path

    @property
    def state_db(self) -> Path:
        """SQLite state database."""
        return self.root / "state.db"

    @property
    def state_url(self) -> str:
        """SQLAlchemy URL of the default state database."""
        return f"sqlite:///{self.state_db}"

    @property
    def spool_db(self) -> Path:
        """The ingest spool."""
        return self.root / "spool" / "spool.db"

    @property
    def events(self) -> Path:
        """Root of the Parquet event store."""
        return self.root / "events"

    @property
    def backups(self) -> Path:
        """State backups taken before migrations."""
        return self.root / "backups"

    @property
    def cache(self) -> Path:
        """Compiled-rule cache of this centre."""
        return self.root / "cache"

    def create(self) -> ServerHome:
        """Make the folders (private to the owner: they hold events and credentials)."""
        for folder in (self.root, self.spool_db.parent, self.events, self.backups, self.cache):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        return self
