"""Fixtures of the console tests: one real ``vedette serve`` with units and a user in three of
them, and a Chromium driven by Playwright (Debian's ``/usr/bin/chromium``).

Outside CI the browser tests skip when Chromium or Playwright is missing; with ``CI`` set they
fail instead (``scripts/setup`` installs Chromium on Debian).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
sys.path.insert(0, str(HERE))

from serverkit import add_token, admin, make_centre  # noqa: E402
from webkit import CHROMIUM, CHROMIUM_ARGS, USERS, World  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("console") / "home"
    centre = make_centre(home, units=(("hq", None), ("branch-a", "hq"), ("branch-b", "hq")))
    admin(home, "unit", "add", "branch-a-1", "--parent", "branch-a", "--silent-after", "60")
    for name, (unit, role) in USERS.items():
        admin(home, "user", "add", name, "--unit", unit, "--role", role)
    ingest = {u: add_token(home, u, "ingest") for u in ("branch-a", "branch-b", "branch-a-1")}
    root = add_token(home, "hq", "admin")
    centre.start()
    world = World(centre=centre, ingest=ingest, root=root)
    try:
        yield world
    finally:
        centre.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise AssertionError(
                f"{CHROMIUM} missing: run scripts/setup (apt-get install chromium)"
            )
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
