"""On-disk cache of compiled rule sets, keyed by what they were compiled from.

The key hashes every rule file's path and content, the placeholder values, and the versions of
Vedette and pySigma, so any change recompiles. Entries are pickles written atomically (temp file
and rename) into a private folder, and loaded only when nobody else could have written them
(:mod:`vedette.detect.private_cache`: unpickling runs code); an unreadable, stale or untrusted
entry is simply ignored and rebuilt. Scanners may store their
own artefacts (serialised Hyperscan databases) beside it under names derived from the same key.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from vedette import __version__
from vedette.detect.private_cache import make_private_dir, read_private

CACHE_FORMAT = 6
"""Bump when the pickled plan's shape, or what loads from the same files, changes (5: one bad
correlation document no longer fails its whole file; 6: correlations a correlator refuses are
load errors, rules nested too deep are refused alone)."""


def fingerprint(texts: Sequence[tuple[str, str]], placeholders: Mapping[str, Sequence[str]]) -> str:
    """Hex digest identifying a rule set and everything its compilation depends on."""
    digest = hashlib.sha256()
    try:
        pysigma = metadata.version("pysigma")
    except metadata.PackageNotFoundError:  # pragma: no cover - pySigma is a dependency
        pysigma = "?"
    digest.update(f"vedette {__version__} pysigma {pysigma} format {CACHE_FORMAT}\0".encode())
    for path, text in texts:
        digest.update(path.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    for name in sorted(placeholders):
        digest.update(f"\0{name}=".encode() + "\0".join(placeholders[name]).encode())
    return digest.hexdigest()[:32]


def load(cache_dir: Path, key: str, kind: str = "rules") -> Any | None:
    """The cached object for ``key``, or None when absent or unreadable."""
    data = read_private(cache_dir / f"{kind}-{key}.pickle")
    if data is None:
        return None
    try:
        return pickle.loads(data)
    except Exception:  # a truncated or foreign file: rebuild rather than fail
        return None


def store(cache_dir: Path, key: str, value: Any, kind: str = "rules") -> bool:
    """Write ``value`` for ``key`` atomically; False when the cache is not writable."""
    temp: str | None = None
    try:
        if not make_private_dir(cache_dir):
            return False
        fd, temp = tempfile.mkstemp(dir=cache_dir, prefix=f".{kind}-")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp, cache_dir / f"{kind}-{key}.pickle")
        temp = None
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return False
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
    return True
