"""Fetch one file over HTTP(S) with the standard library, bounded in time and size.

Vedette is air-gapped by default: this module is only reached when the user runs
``vedette rules update``. Network and HTTP failures are translated here, at one boundary,
into :class:`RuleUpdateError` with the URL and the reason.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vedette import __version__
from vedette.errors import VedetteError

DEFAULT_TIMEOUT = 60.0
"""Seconds without progress before a download is abandoned."""

MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
"""A SigmaHQ release zip is a few MiB; anything this large is not one."""

_SCHEMES = frozenset({"http", "https", "file"})
_CHUNK = 64 * 1024


class RuleUpdateError(VedetteError):
    """A rule set could not be downloaded or installed; the previous one is kept."""


@dataclass(slots=True, frozen=True)
class Download:
    """A finished download: where it is on disk and the URL it finally came from."""

    path: Path
    final_url: str
    size: int


def fetch(
    url: str, dest: Path, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_DOWNLOAD_BYTES
) -> Download:
    """Download ``url`` into ``dest`` (following redirects); raise :class:`RuleUpdateError`."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise RuleUpdateError(f"unsupported URL {url!r}: use http://, https:// or file://")
    request = urllib.request.Request(url, headers={"User-Agent": f"vedette/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as out:
            final_url = str(response.geturl() or url)
            size = _copy_bounded(response, out, max_bytes, url)
    except urllib.error.HTTPError as exc:
        raise RuleUpdateError(f"download failed: HTTP {exc.code} {exc.reason} from {url}") from None
    except urllib.error.URLError as exc:
        raise RuleUpdateError(f"cannot reach {url}: {exc.reason}") from None
    except TimeoutError:
        raise RuleUpdateError(f"download timed out after {timeout:g}s: {url}") from None
    except OSError as exc:
        raise RuleUpdateError(f"download failed from {url}: {exc}") from None
    return Download(dest, final_url, size)


def _copy_bounded(source: IO[bytes], out: IO[bytes], max_bytes: int, url: str) -> int:
    """Copy a response to a file, refusing more than ``max_bytes``."""
    total = 0
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            return total
        total += len(chunk)
        if total > max_bytes:
            raise RuleUpdateError(
                f"download from {url} exceeds {max_bytes // (1024 * 1024)} MiB; not a rule archive"
            )
        out.write(chunk)


def copy_local(path: Path, dest: Path) -> Download:
    """Take a rule archive from a local file (air-gapped transfer) as if it were downloaded."""
    try:
        shutil.copyfile(path, dest)
    except OSError as exc:
        raise RuleUpdateError(f"cannot read rule archive {path}: {exc.strerror or exc}") from None
    return Download(dest, path.resolve().as_uri(), dest.stat().st_size)
