"""`vedette version`: the version of Vedette and of the engines it stands on."""

from __future__ import annotations

import argparse
from importlib import metadata

from vedette import __version__
from vedette.cli.registry import CommandRegistry

COMPONENTS = ("pysigma", "evtx", "hyperscan", "orjson", "duckdb")


def _configure(parser: argparse.ArgumentParser) -> None:
    del parser


def _run(args: argparse.Namespace) -> int:
    del args
    print(f"vedette {__version__}")
    for name in COMPONENTS:
        try:
            print(f"  {name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            print(f"  {name} (not installed)")
    return 0


def register(registry: CommandRegistry) -> None:
    """Register `vedette version`."""
    registry.add(("version",), "show the versions of Vedette and its engines", _configure, _run)
