#!/usr/bin/env python3
"""Check, or fetch again, the front-end files Vedette vendors (pins in vendor_assets.json).

    scripts/vendor_assets.py            # check the vendored files against their pinned SHA-256
    scripts/vendor_assets.py --fetch    # npm pack each pinned version, check, then copy in

The console itself uses no front-end library (its script is src/vedette/web/static/console.js);
what is vendored serves the tests. Fetching needs npm and the registry; checking needs neither.
A hash that differs is an error, never a silent update: change a pin on purpose, in review.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = Path(__file__).with_suffix(".json")


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> list[str]:
    """Problems of the vendored files: missing, or not the pinned bytes."""
    problems = []
    for package in json.loads(PINS.read_text())["packages"]:
        for item in package["files"]:
            target = ROOT / item["to"]
            if not target.exists():
                problems.append(f"{item['to']}: missing")
            elif sha256(target) != item["sha256"]:
                problems.append(f"{item['to']}: sha256 {sha256(target)} != pinned {item['sha256']}")
    return problems


def fetch() -> list[str]:
    """``npm pack`` each pinned package, check its files, and copy them in."""
    problems = []
    for package in json.loads(PINS.read_text())["packages"]:
        spec = f"{package['name']}@{package['version']}"
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                ["npm", "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True
            )
            if done.returncode != 0:
                problems.append(f"{spec}: npm pack failed: {done.stderr.strip()}")
                continue
            tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as archive:
                archive.extractall(tmp, filter="data")
            for item in package["files"]:
                source = Path(tmp) / item["from"]
                if not source.exists():
                    problems.append(f"{spec}: {item['from']} not in the package")
                elif sha256(source) != item["sha256"]:
                    problems.append(f"{spec}: {item['from']} sha256 {sha256(source)} is not pinned")
                else:
                    target = ROOT / item["to"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
    return problems


def main() -> int:
    """Check (default) or fetch; non-zero with the list of problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="npm pack, check and copy in")
    args = parser.parse_args()
    problems = fetch() if args.fetch else []
    problems += check()
    for problem in problems:
        print(f"vendor_assets: {problem}", file=sys.stderr)
    if not problems:
        print("vendor_assets: every vendored file matches its pin")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
