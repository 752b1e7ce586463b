"""`vedette rules update`: install the current SigmaHQ rule set for offline use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vedette.cli.registry import CommandRegistry
from vedette.rulepacks import DEFAULT_PACKAGE, PACKAGES, RulesetInfo, update_rules
from vedette.rulepacks.download import DEFAULT_TIMEOUT
from vedette.rulepacks.sigmahq import package_url

DESCRIPTION = """\
Download the current SigmaHQ release rule package and install it in Vedette's data folder
($VEDETTE_HOME, else $XDG_DATA_HOME/vedette, else ~/.local/share/vedette), under rules/sigma.
`vedette scan` then uses it beside the bundled starter pack. This is the only command that
uses the network, and only when you run it. The archive is checked and unpacked beside the
old rule set, then swapped in; on any failure the old rule set is kept.

packages (SigmaHQ release assets):
  core               stable/testing rules, level high and critical (default)
  core+              core plus level medium
  core++             core+ plus experimental rules
  emerging-threats   rules for specific current threats and exploits
  all                every rule SigmaHQ releases

examples:
  vedette rules update                          latest SigmaHQ core package
  vedette rules update --package all
  vedette rules update --file sigma_core.zip    air-gapped: a zip carried in by hand
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--package",
        choices=sorted(PACKAGES),
        default=DEFAULT_PACKAGE,
        help=f"SigmaHQ release package to install (default: {DEFAULT_PACKAGE})",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help="download the rule zip from this URL instead")
    source.add_argument(
        "--file", type=Path, metavar="ZIP", help="install a rule zip from a local file (no network)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"network timeout (default: {DEFAULT_TIMEOUT:g})",
    )


def _describe(info: RulesetInfo) -> str:
    version = info.version or "unversioned"
    package = f", package {info.package}" if info.package else ""
    return f"{version}{package}: {info.rule_count:,} rules"


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _run(args: argparse.Namespace) -> int:
    if args.file is not None:
        print(f"installing rules from {args.file}", file=sys.stderr)
    else:
        print(f"downloading {args.url or package_url(args.package)}", file=sys.stderr)
    result = update_rules(
        package=args.package, url=args.url, archive=args.file, timeout=args.timeout
    )
    print(f"installed Sigma rule set {_describe(result.installed)}")
    print(f"  into   {result.path}")
    check = result.load_check
    if check is not None:
        # A file count is not what a scan will use: say how many rule files load.
        files = _count(check.files, "rule file")
        if check.files_failed:
            verb = "loads" if check.files_loading == 1 else "load"
            print(
                f"  {files}: {check.files_loading:,} {verb}, {check.files_failed:,} do not"
                f" (see: vedette rules check {result.path})"
            )
        else:
            print(f"  {files}: all load ({_count(check.rules_loaded, 'rule')})")
    print(f"  from   {result.installed.source}")
    if result.previous is not None:
        print(f"  replaced {_describe(result.previous)} (installed {result.previous.installed_at})")
    print("`vedette scan` now uses these rules together with the bundled starter pack.")
    return 0


def register(registry: CommandRegistry) -> None:
    """Register `vedette rules update`."""
    if ("rules",) not in registry.group_help:
        registry.group(("rules",), "manage Sigma rules: list, check, update")
    registry.add(
        ("rules", "update"),
        "download the current SigmaHQ rule set (the only command that uses the network)",
        _configure,
        _run,
        DESCRIPTION,
    )
