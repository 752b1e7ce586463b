"""`vedette rules update`: fetch a SigmaHQ release rule package and install it.

SigmaHQ publishes each release (tags such as ``r2026-11-17``) with rule packages as zip assets;
GitHub redirects ``releases/latest/download/<asset>`` to the newest release, and the tag is
read back from the final URL. See SigmaHQ's ``Releases.md`` for what each package holds.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vedette.rulepacks.download import DEFAULT_TIMEOUT, Download, RuleUpdateError, copy_local, fetch
from vedette.rulepacks.install import RulesetInfo, install_archive, read_manifest, update_lock
from vedette.rulepacks.paths import installed_ruleset_dir

RELEASE_URL = "https://github.com/SigmaHQ/sigma/releases/latest/download/{asset}"

PACKAGES: dict[str, str] = {
    "core": "sigma_core.zip",
    "core+": "sigma_core+.zip",
    "core++": "sigma_core++.zip",
    "emerging-threats": "sigma_emerging_threats_addon.zip",
    "all": "sigma_all_rules.zip",
}
"""SigmaHQ release packages by the name ``--package`` takes, to their asset file names."""

DEFAULT_PACKAGE = "core"
"""SigmaHQ's own advice: start with core (stable/testing rules of level high and critical)."""

_RELEASE_TAG = re.compile(r"/releases/download/([^/]+)/")


@dataclass(slots=True, frozen=True)
class LoadCheck:
    """How the installed rule files load in the engine: a file count is not a rule count."""

    files: int
    files_failed: int
    rules_loaded: int

    @property
    def files_loading(self) -> int:
        """Rule files with no load error."""
        return max(0, self.files - self.files_failed)


@dataclass(slots=True, frozen=True)
class UpdateResult:
    """The rule set now installed, where, the one it replaced (if any), and how it loads."""

    installed: RulesetInfo
    path: Path
    previous: RulesetInfo | None
    load_check: LoadCheck | None = None


def check_loading(folder: Path, *, cache_dir: Path | None = None) -> LoadCheck | None:
    """Load every rule under ``folder`` as `vedette scan` would, and count what does not load.

    With the scan's ``cache_dir`` the first scan after an update then starts from a warm
    cache. None when the check itself cannot run (the install stands either way).
    """
    from vedette.detect import Engine
    from vedette.errors import VedetteError

    try:
        engine = Engine.from_paths([folder], scanner="none", cache_dir=cache_dir)
    except (VedetteError, OSError):
        return None
    report = engine.load_report
    failed = len({error.path for error in report.errors})
    return LoadCheck(files=report.files, files_failed=failed, rules_loaded=report.loaded)


def package_url(package: str) -> str:
    """Download URL of a SigmaHQ package in the latest release."""
    try:
        return RELEASE_URL.format(asset=PACKAGES[package])
    except KeyError:
        known = ", ".join(PACKAGES)
        raise RuleUpdateError(f"unknown package {package!r}; choose one of: {known}") from None


def release_tag(url: str) -> str | None:
    """The release tag a GitHub release-asset URL points into (``r2026-11-17``), if any."""
    match = _RELEASE_TAG.search(url)
    return match.group(1) if match else None


def update_rules(
    *,
    package: str = DEFAULT_PACKAGE,
    url: str | None = None,
    archive: Path | None = None,
    target: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> UpdateResult:
    """Download (or take from ``archive``) a Sigma rule zip and install it into ``target``.

    ``url`` overrides the SigmaHQ release URL of ``package``; ``archive`` is a local zip
    for machines without network. The previous rule set stays in place on any failure.
    """
    target = target if target is not None else installed_ruleset_dir()
    with (
        update_lock(target.parent),
        tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp,
    ):
        previous = read_manifest(target) if target.is_dir() else None
        dest = Path(tmp) / "rules.zip"
        download: Download
        if archive is not None:
            download = copy_local(archive, dest)
        else:
            download = fetch(url or package_url(package), dest, timeout=timeout)
        installed = install_archive(
            download.path,
            target,
            source=download.final_url,
            version=release_tag(download.final_url),
            package=package if archive is None and url is None else None,
            archive_sha256=_sha256(download.path),
        )
    from vedette.paths import cache_dir as default_cache_dir

    return UpdateResult(
        installed, target, previous, check_loading(target, cache_dir=default_cache_dir())
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
