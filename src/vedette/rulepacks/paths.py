"""Where Vedette's rules live: the starter pack inside the package, the user's rule set outside.

The starter pack ships inside the installed package, so ``vedette scan`` finds rules with no
download. ``vedette rules update`` installs the SigmaHQ release into the user data directory::

    $VEDETTE_HOME                      (if set), else
    $XDG_DATA_HOME/vedette             (if set), else
    %LOCALAPPDATA%\\vedette             (Windows), else
    ~/.local/share/vedette
      └── rules/sigma/                 the installed SigmaHQ rule set (swapped in atomically)
"""

from __future__ import annotations

from pathlib import Path

from vedette.paths import data_dir

STARTER_PACK_DIR = Path(__file__).resolve().parent / "starter"
"""The project's own starter Sigma rules, shipped inside the package."""

INSTALLED_RULESET = Path("rules") / "sigma"
"""The installed rule set, relative to the data directory."""


def starter_pack_dir() -> Path:
    """Folder of the bundled starter rule pack."""
    return STARTER_PACK_DIR


def installed_ruleset_dir() -> Path:
    """Folder where ``vedette rules update`` installs the SigmaHQ rule set."""
    return data_dir() / INSTALLED_RULESET


def default_rule_paths() -> list[Path]:
    """Rule paths used when the user names none: the starter pack plus any installed rule set."""
    paths = [starter_pack_dir()]
    installed = installed_ruleset_dir()
    if installed.is_dir():
        paths.append(installed)
    return paths
