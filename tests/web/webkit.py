"""Helpers of the console tests: the world (a real centre with units and users), events that
fire a rule, and logging a browser page in."""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from serverkit import Centre

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07" / "sysmon.jsonl"
SHOTS = Path(os.environ.get("VEDETTE_SCREENSHOTS", Path(__file__).parent / "screenshots"))
USERS = {"chief": ("hq", "admin"), "ana": ("branch-a", "analyst"), "bob": ("branch-b", "analyst")}


def lsass_event(host: str, **fields: Any) -> bytes:
    """The sample's LSASS MiniDump event (it fires a rule), on ``host``, timed now, with
    ``fields`` added to its EventData."""
    line = SAMPLE.read_text().splitlines()[34]
    event = copy.deepcopy(json.loads(line))
    assert event["Event"]["EventData"]["TargetImage"].endswith("lsass.exe")
    system = event["Event"]["System"]
    system["Computer"] = host
    system["TimeCreated"]["#attributes"]["SystemTime"] = datetime.now(UTC).isoformat()
    event["Event"]["EventData"].update(fields)
    return json.dumps(event).encode() + b"\n"


@dataclass
class World:
    """The running centre, its ingest tokens and an admin token for checks through the API."""

    centre: Centre
    ingest: dict[str, str]
    root: str
    alerts: dict[str, int] = field(default_factory=dict)

    def send(self, unit: str, body: bytes) -> None:
        """Ingest ``body`` (NDJSON) into ``unit``."""
        with self.centre.client(self.ingest[unit]) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text

    def wait_alert(self, unit: str, host: str, timeout: float = 60) -> dict[str, Any]:
        """The alert of ``unit`` on ``host``, once the worker has raised it."""
        deadline = time.monotonic() + timeout
        with self.centre.client(self.root) as http:
            while time.monotonic() < deadline:
                items = http.get("/api/v1/alerts", params={"unit": unit, "limit": 1000}).json()
                found = [a for a in items["items"] if a["host"] == host]
                if found:
                    return dict(found[0])
                time.sleep(0.2)
        raise AssertionError(f"no alert on {host} in {unit}: {self.centre.log()[-2000:]}")

    def api(self, method: str, path: str, **options: Any) -> httpx.Response:
        """A call as the centre's admin."""
        with self.centre.client(self.root) as http:
            return http.request(method, path, **options)


def login(browser: Any, world: World, user: str, **context: Any) -> Any:
    """A new browser page logged in as ``user`` (1366x768 unless told otherwise)."""
    options = {"viewport": {"width": 1366, "height": 768}, **context}
    page = browser.new_context(**options).new_page()
    page.goto(world.centre.url + "/")
    page.fill("#name", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/overview")
    return page


def submit(page: Any, selector: str) -> None:
    """Click a submit button and wait for the page the server answers with."""
    with page.expect_navigation():
        page.click(selector)
