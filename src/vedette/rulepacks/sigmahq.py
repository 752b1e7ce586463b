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
class UpdateResult:
    """The rule set now installed, where, and the one it replaced (if any)."""

    installed: RulesetInfo
    path: Path
    previous: RulesetInfo | None


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
    return UpdateResult(installed, target, previous)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
