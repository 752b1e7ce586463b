"""On-disk cache of built indicator indexes, keyed by what they were built from.

Building a million-indicator index from its feeds takes seconds of CPU; loading the pickled
index takes a fraction of a second (see BENCHMARKS.md). The key hashes every feed file's
content (for a MISP feed folder, every file in it), each feed's settings, the field map and
Vedette's version, so any change rebuilds. Entries are written atomically (temp file and
rename) into a private folder and loaded only when nobody else could have written them
(:mod:`vedette.detect.private_cache`: unpickling runs code); an unreadable or untrusted entry
is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

from vedette import __version__
from vedette.detect.private_cache import make_private_dir, read_private
from vedette.intel.feeds import FeedSpec
from vedette.intel.fields import FieldMap

if TYPE_CHECKING:
    from vedette.intel.index import IndicatorIndex

CACHE_FORMAT = 1
"""Bump when the pickled index's shape changes incompatibly."""
_CHUNK = 1 << 20


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    digest.update(str(path).encode("utf-8", "surrogatepass") + b"\0")
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def fingerprint(specs: Sequence[FeedSpec], fields: FieldMap) -> str:
    """Hex digest of the feeds' contents and settings, the field map and Vedette's version."""
    digest = hashlib.sha256(f"vedette {__version__} intel-cache {CACHE_FORMAT}\0".encode())
    digest.update(repr(sorted(fields.kinds.items())).encode() + repr(fields.url_parts).encode())
    for spec in specs:
        digest.update(repr(astuple(spec)).encode("utf-8", "surrogatepass"))
        path = Path(spec.path)
        if spec.format == "misp-manifest" or path.name == "manifest.json":
            for member in sorted(p for p in path.parent.iterdir() if p.is_file()):
                _hash_file(digest, member)
        else:
            _hash_file(digest, path)
    return digest.hexdigest()[:32]


def cache_path(cache_dir: Path, key: str) -> Path:
    """Where the index with fingerprint ``key`` is kept."""
    return cache_dir / f"intel-{key}.pickle"


def load(cache_dir: Path, key: str) -> IndicatorIndex | None:
    """The cached index, or None when absent, unreadable or not certainly ours."""
    from vedette.intel.index import IndicatorIndex

    data = read_private(cache_path(cache_dir, key))
    if data is None:
        return None
    try:
        index = pickle.loads(data)
    except (pickle.PickleError, EOFError, AttributeError, ImportError, TypeError,
            ValueError):  # fmt: skip
        return None
    return index if isinstance(index, IndicatorIndex) else None


def store(cache_dir: Path, key: str, index: IndicatorIndex) -> None:
    """Keep ``index`` under ``key``; a cache that cannot be written is silently skipped."""
    try:
        if not make_private_dir(cache_dir):
            return
        handle, temp = tempfile.mkstemp(dir=cache_dir, prefix=".intel-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                pickle.dump(index, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, cache_path(cache_dir, key))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError:
        return
