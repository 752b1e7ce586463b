"""Install a Sigma rule archive (a zip) as the user's rule set, all or nothing.

The archive is checked (a real zip, safe member paths, bounded size, Sigma YAML inside),
unpacked into a staging folder beside the target, described by a manifest, and only then
swapped into place. Any failure leaves the previous rule set exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from vedette.rulepacks.download import RuleUpdateError

MANIFEST_NAME = ".vedette-ruleset.json"
"""Manifest inside the installed folder: where the rules came from, when, how many."""

MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
"""Refuse archives that would unpack to more than this (zip bombs)."""

_RULE_SUFFIXES = frozenset({".yml", ".yaml"})
_KEPT_NAMES = re.compile(r"^(LICEN[CS]E|README|Releases|version)", re.IGNORECASE)
# A Sigma rule document has a top-level title and a detection (or correlation) section.
_TITLE = re.compile(rb"^title\s*:", re.MULTILINE)
_BODY = re.compile(rb"^(detection|correlation)\s*:", re.MULTILINE)
_STAGING_PREFIX = ".staging-"
_RETIRED_PREFIX = ".retired-"


@dataclass(slots=True, frozen=True, kw_only=True)
class RulesetInfo:
    """What is installed: source URL, release version, package, date and rule count."""

    source: str
    version: str | None
    package: str | None
    installed_at: str
    rule_count: int
    file_count: int
    archive_sha256: str


@contextmanager
def update_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for one update; a second update fails at once.

    Only POSIX systems get the lock (``fcntl``); elsewhere updates are not serialised.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with (folder / ".update.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuleUpdateError(
                f"another `vedette rules update` is running on {folder}; try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def looks_like_sigma(data: bytes) -> bool:
    """True when a YAML file has the shape of a Sigma rule (title plus detection/correlation)."""
    return bool(_TITLE.search(data) and _BODY.search(data))


def read_manifest(folder: Path) -> RulesetInfo | None:
    """The manifest of an installed rule set, or None when absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text("utf-8"))
        return RulesetInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def install_archive(
    archive: Path,
    target: Path,
    *,
    source: str,
    version: str | None = None,
    package: str | None = None,
    archive_sha256: str = "",
) -> RulesetInfo:
    """Verify ``archive`` and atomically make its rules the content of ``target``."""
    if not zipfile.is_zipfile(archive):
        raise RuleUpdateError(f"{source} is not a zip archive; the current rule set is kept")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX + target.name, dir=target.parent))
    try:
        rule_count, file_count = _unpack(archive, staging, source)
        if rule_count == 0:
            raise RuleUpdateError(
                f"{source} holds no Sigma rules ({file_count} YAML files, none with a title and "
                "a detection); the current rule set is kept"
            )
        info = RulesetInfo(
            source=source,
            version=version,
            package=package,
            installed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            rule_count=rule_count,
            file_count=file_count,
            archive_sha256=archive_sha256,
        )
        (staging / MANIFEST_NAME).write_text(json.dumps(asdict(info), indent=2) + "\n", "utf-8")
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def _unpack(archive: Path, staging: Path, source: str) -> tuple[int, int]:
    """Extract the YAML rules (and licence/readme files) of ``archive``; count the rules."""
    rules = files = 0
    unpacked = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if member.is_dir():
                    continue
                relative = _safe_member_path(member.filename, source)
                is_yaml = relative.suffix.lower() in _RULE_SUFFIXES
                if not is_yaml and not _KEPT_NAMES.match(relative.name):
                    continue
                unpacked += member.file_size
                if unpacked > MAX_UNPACKED_BYTES:
                    raise RuleUpdateError(f"{source} unpacks to more than 1 GiB; refused")
                data = zf.read(member)
                destination = staging.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(data)
                if is_yaml:
                    files += 1
                    rules += looks_like_sigma(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise RuleUpdateError(f"{source} is a damaged zip archive: {exc}") from None
    return rules, files


def _safe_member_path(name: str, source: str) -> PurePosixPath:
    """A member path that stays inside the staging folder (no absolute paths, no ``..``)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise RuleUpdateError(f"{source} contains an unsafe path {name!r}; refused")
    return path


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames on one file system.

    Between the renames no rule set is in place for an instant; a reader never sees a half
    unpacked one. If the second rename fails, the previous rule set is put back.
    """
    retired: Path | None = None
    if target.exists():
        retired = target.with_name(f"{_RETIRED_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, retired)
    try:
        os.replace(staging, target)
    except OSError as exc:
        if retired is not None:
            os.replace(retired, target)
        raise RuleUpdateError(f"cannot install rules into {target}: {exc}") from None
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _remove_leftovers(target: Path) -> None:
    """Delete staging and retired folders an interrupted update may have left behind."""
    for prefix in (_STAGING_PREFIX, _RETIRED_PREFIX):
        for stale in target.parent.glob(f"{prefix}{target.name}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
