#!/usr/bin/env python3
"""Regenerate Vedette's bundled ATT&CK table from an Enterprise ATT&CK STIX bundle.

Usage::

    .venv/bin/python scripts/build_attack_table.py \
        ../shared/datasets/mitre-attack/enterprise-attack-v18.1-from-mitre-cti.json.gz \
        --version 18.1

writes ``src/vedette/intel/data/attack-enterprise.json.gz`` (MITRE's copyright notice and
licence are embedded in the file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vedette.intel.attack_table import read_json_file, table_from_stix, write_table  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "vedette" / "intel" / "data" / "attack-enterprise.json.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "bundle", type=Path, help="enterprise-attack STIX bundle (.json or .json.gz)"
    )
    parser.add_argument("--version", default="", help="ATT&CK version label, e.g. 18.1")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    table = table_from_stix(read_json_file(args.bundle), version=args.version)
    write_table(table, args.output)
    print(
        f"{args.output}: {len(table['techniques'])} techniques, {len(table['tactics'])} tactics, "
        f"{len(table['groups'])} groups, {len(table['software'])} software, "
        f"{args.output.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
