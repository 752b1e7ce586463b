"""Rule packs: the bundled starter Sigma rules and the SigmaHQ rule set `rules update` installs.

``default_rule_paths()`` is what ``vedette scan`` uses when no ``--rules`` is given.
"""

from __future__ import annotations

from vedette.paths import data_dir
from vedette.rulepacks.download import RuleUpdateError
from vedette.rulepacks.install import RulesetInfo, install_archive, read_manifest
from vedette.rulepacks.paths import (
    default_rule_paths,
    installed_ruleset_dir,
    starter_pack_dir,
)
from vedette.rulepacks.sigmahq import DEFAULT_PACKAGE, PACKAGES, UpdateResult, update_rules

__all__ = [
    "DEFAULT_PACKAGE",
    "PACKAGES",
    "RuleUpdateError",
    "RulesetInfo",
    "UpdateResult",
    "data_dir",
    "default_rule_paths",
    "install_archive",
    "installed_ruleset_dir",
    "read_manifest",
    "starter_pack_dir",
    "update_rules",
]
