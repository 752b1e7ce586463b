"""Hyperscan databases of an item translation: compiled once, serialised into the cache.

Databases take seconds to compile for the whole SigmaHQ corpus; they are serialised into the
engine's cache directory under a hash of their patterns, so a warm start only deserialises them.
Every database is scanned one value (or, for keywords, one event) at a time and reports each
pattern once per scan (``HS_FLAG_SINGLEMATCH``): one callback per true pattern.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import hyperscan

from vedette.detect.hs_patterns import PatternSet
from vedette.detect.private_cache import make_private_dir, read_private

DatabaseKey = tuple[int, int]
"""``(group, kind)``: a field number (or keywords) and FOLDED, CASED or REGEX."""

FORMAT_VERSION = "hs-items-7"
"""Bumped whenever the pattern translation or value layout changes (part of the cache key)."""


def _cache_key(patterns: PatternSet) -> str:
    digest = hashlib.sha256(FORMAT_VERSION.encode())
    digest.update(str(getattr(hyperscan, "__version__", "")).encode())
    for (group, cased), pids in sorted(patterns.databases.items()):
        digest.update(b"db%d:%d:" % (group, cased))
        for pid in pids:
            expression = patterns.expressions[pid]
            digest.update(b"%d:%d:%d:" % (pid, patterns.flags[pid], len(expression)))
            digest.update(expression)
    return digest.hexdigest()[:32]


def _deserialise(blob: bytes) -> Any:
    database = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
    # A deserialised database comes without scratch space; scanning needs one.
    database.scratch = hyperscan.Scratch(database)
    return database


def _compile(patterns: PatternSet, pids: list[int]) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[patterns.expressions[p] for p in pids],
        ids=pids,
        elements=len(pids),
        flags=[patterns.flags[p] | hyperscan.HS_FLAG_SINGLEMATCH for p in pids],
    )
    return database


def load_databases(
    patterns: PatternSet, cache_dir: Path | None
) -> tuple[dict[DatabaseKey, Any], bytes]:
    """Every database of ``patterns`` and their serialised bundle, from cache when present."""
    path = cache_dir / f"hyperscan-{_cache_key(patterns)}.bin" if cache_dir else None
    bundle = read_private(path) if path is not None else None  # it unpickles: only ours
    if bundle is not None:
        try:
            return unbundle(bundle), bundle
        except (hyperscan.error, pickle.UnpicklingError, EOFError, ValueError):
            pass  # unreadable, written by another Hyperscan build or damaged: compile afresh
    databases = {key: _compile(patterns, pids) for key, pids in patterns.databases.items()}
    bundle = pickle.dumps(
        {key: hyperscan.dumpb(db) for key, db in databases.items()}, pickle.HIGHEST_PROTOCOL
    )
    if path is not None:
        _write_atomically(path, bundle)
    return databases, bundle


def unbundle(bundle: bytes) -> dict[DatabaseKey, Any]:
    blobs: dict[DatabaseKey, bytes] = pickle.loads(bundle)
    return {key: _deserialise(blob) for key, blob in blobs.items()}


def _write_atomically(path: Path, blob: bytes) -> None:
    if not make_private_dir(path.parent):
        return  # an unusable or shared cache folder only costs the next start a compile
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".hyperscan-")
    except OSError:
        return  # an unusable cache folder only costs the next start a compile
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(blob)
        os.replace(temp, path)
    except OSError:
        # A read-only or full cache only costs the next start a compile.
        Path(temp).unlink(missing_ok=True)
