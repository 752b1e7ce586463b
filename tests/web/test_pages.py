"""Every console page in both languages and both themes: a screenshot for a person to look at,
an axe-core accessibility check (WCAG 2 A and AA, contrast included), and no request to any
host but the centre's own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from webkit import SHOTS, World, login, lsass_event

pytestmark = [
    pytest.mark.contract,
    pytest.mark.scaleout_excluded(
        "cost: 170 s of the pass (4 themes x languages + 4k, screenshots and axe); the same "
        "templates on both sets, their data routes run in test_http and test_browser"
    ),
]

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
LANGS = ("en", "vi")
PAGES_RULE = """\
title: Pages check retro-hunt
id: 5e0c1a2b-3d4e-4f5a-8b9c-0d1e2f3a4b5c
status: test
logsource:
    product: windows
    category: process_access
detection:
    selection:
        TargetImage|endswith: '\\lsass.exe'
    condition: selection
level: high
"""
THEMES = ("dark", "light")


@pytest.fixture(scope="module")
def paths(world: World) -> dict[str, str]:
    """The pages to visit, with an alert and an incident of branch-a to show."""
    host = "pages-01.corp.example"
    world.send("branch-a", lsass_event(host))
    alert = world.wait_alert("branch-a", host)
    made = world.api("POST", "/api/v1/incidents", json={"title": "Pages check", "unit": "branch-a"})
    assert made.status_code == 201, made.text
    incident = made.json()["id"]
    world.api("POST", f"/api/v1/incidents/{incident}/tasks", json={"title": "Isolate pages-01"})
    world.api("POST", "/api/v1/bulletins", json={"title": "Pages bulletin", "text": "Look out."})
    hunt = world.api(
        "POST", "/api/v1/retrohunts", json={"rule": PAGES_RULE, "title": "Pages retro-hunt"}
    )
    assert hunt.status_code == 201, hunt.text
    job = hunt.json()["id"]
    deadline = time.monotonic() + 120  # finished: its page then stays as photographed
    while world.api("GET", f"/api/v1/retrohunts/{job}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the pages' retro-hunt did not finish"
        time.sleep(0.2)
    return {
        "overview": "/overview",
        "wall": "/overview?wall=1&hours=168",
        "alerts": "/alerts",
        "alert": f"/alerts/{alert['id']}",
        "hunt": "/hunt",
        "retrohunt": f"/hunt/retrohunts/{job}",
        "rules": "/rules",
        "tuning": "/rules/tuning?hours=720",
        "admin": "/admin",
        "incidents": "/incidents",
        "incident": f"/incidents/{incident}",
        "warnings": "/warnings",
        "bulletins": "/bulletins",
        "not-found": "/alerts/999999",
    }


def _axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the page (injected over the DevTools protocol,
    which the page's CSP does not govern; the console itself never loads it)."""
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return list(result)


def _visit(page: Any, url: str, origin: str, foreign: list[str]) -> None:
    def record(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" != origin:
            foreign.append(request.url)

    page.on("request", record)
    page.goto(url)  # "load": the queue's event stream never lets the network go idle


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("lang", LANGS)
def test_every_page_is_accessible_local_and_photographed(
    browser: Any, world: World, paths: dict[str, str], lang: str, theme: str
) -> None:
    origin = world.centre.url
    SHOTS.mkdir(parents=True, exist_ok=True)
    foreign: list[str] = []
    problems: dict[str, list[dict[str, Any]]] = {}

    anonymous = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    _visit(anonymous, f"{origin}/?lang={lang}&theme={theme}", origin, foreign)
    assert anonymous.get_attribute("html", "lang") == lang
    anonymous.screenshot(path=str(SHOTS / f"{lang}-{theme}-login.png"), full_page=True)
    if found := _axe(anonymous):
        problems["login"] = found
    anonymous.context.close()

    page = login(browser, world, "chief")
    _visit(page, f"{origin}/overview?lang={lang}&theme={theme}", origin, foreign)
    for name, path in paths.items():
        _visit(page, origin + path, origin, foreign)
        assert page.get_attribute("html", "lang") == lang, name
        assert page.get_attribute("html", "data-theme") == theme, name
        if name == "hunt":
            page.click("#run")
            page.wait_for_selector("table.results")
        page.screenshot(path=str(SHOTS / f"{lang}-{theme}-{name}.png"), full_page=True)
        if found := _axe(page):
            problems[name] = found
    page.context.close()
    assert not foreign, f"requests to other hosts: {foreign}"
    assert not problems, problems


def test_a_wall_screen_at_4k(browser: Any, world: World) -> None:
    page = login(browser, world, "chief", viewport={"width": 3840, "height": 2160})
    page.goto(world.centre.url + "/overview?wall=1&refresh=5&hours=168&lang=en")
    page.evaluate("document.querySelector('main').dataset.marker = 'before'")
    for _ in range(60):  # polled from here: the page's CSP forbids eval-based waiting
        page.wait_for_timeout(500)
        if page.evaluate("document.querySelector('main').dataset.marker") != "before":
            break
    else:
        raise AssertionError("the wall screen did not refresh its content")
    assert page.evaluate("document.body.classList.contains('wall')")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 3840, "the wall screen scrolls sideways"
    page.screenshot(path=str(SHOTS / "en-dark-wall-4k.png"))
    page.context.close()
