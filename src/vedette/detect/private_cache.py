"""Cache folders only this user can write, and entries read only when nobody else could have.

A cache entry is a pickle, marshalled code or a bundle that unpickles: loading it runs whatever
it says. So a folder is created private (0700), and an entry is read only when its folder and
the file itself are owned by this user and writable by nobody else, through a descriptor opened
without following a symbolic link (what is checked is what is read). Anything else is ignored:
the caller rebuilds in memory, which costs time, never safety.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _mine(info: os.stat_result) -> bool:
    """Owned by this user and writable by no one else (no owners to check on Windows)."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return True
    return info.st_uid == geteuid() and not info.st_mode & _OTHERS_WRITE


def is_private_dir(path: Path) -> bool:
    """True when ``path`` is a folder of this user that no one else can write."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(info.st_mode) and _mine(info)


def make_private_dir(path: Path) -> bool:
    """Create ``path`` (0700) if needed; True when it is a private folder fit for entries."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, ValueError):
        return False
    return is_private_dir(path)


def read_private(path: Path) -> bytes | None:
    """The bytes of the entry at ``path``, or None when it is absent or anyone but this user
    could have written it (or its folder)."""
    if not is_private_dir(path.parent):
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or not _mine(info):
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(descriptor)
