"""Incident sharing and escalation, the admin's users and bulletins in the console over HTTP:
each form post goes through the same services and unit scope as the API, with CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from test_rules_console import HTML, _csrf, _login
from webkit import World

pytestmark = pytest.mark.contract


@pytest.fixture
def ana(world: World) -> Iterator[httpx.Client]:
    with closing(_login(world, "ana")) as http:
        yield http


@pytest.fixture
def bob(world: World) -> Iterator[httpx.Client]:
    with closing(_login(world, "bob")) as http:
        yield http


def _incident(world: World, number: int) -> dict[str, object]:
    answer = world.api("GET", f"/api/v1/incidents/{number}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_share_then_escalate(world: World, ana: httpx.Client, bob: httpx.Client) -> None:
    token = _csrf(ana.get("/incidents").text)
    # Without alerts: the grouping may already have put a new alert in an incident.
    made = ana.post("/incidents", data={"csrf": token, "title": "shared case", "severity": "high"})
    assert made.status_code == 303, made.text
    number = int(made.headers["location"].rsplit("/", 1)[1])
    page = ana.get(f"/incidents/{number}").text
    assert f'action="/incidents/{number}/share"' in page
    assert f'action="/incidents/{number}/escalate"' in page

    # bob's unit does not see it until it is shared.
    assert bob.get(f"/incidents/{number}").status_code == 404
    forged = ana.post(f"/incidents/{number}/share", data={"csrf": "x", "unit": "branch-b"})
    assert forged.status_code == 403
    assert bob.get(f"/incidents/{number}").status_code == 404
    shared = ana.post(
        f"/incidents/{number}/share",
        data={"csrf": token, "unit": "branch-b"},
    )
    assert shared.status_code == 303 and shared.headers["location"] == f"/incidents/{number}"
    units = {u["unit"]: u["role"] for u in _incident(world, number)["units"]}  # type: ignore[attr-defined]
    assert units == {"branch-a": "owner", "branch-b": "participant"}, units
    seen = bob.get(f"/incidents/{number}")
    assert seen.status_code == 200 and "shared case" in seen.text
    assert f'action="/incidents/{number}/share"' not in seen.text  # a participant: no form
    bob_token = _csrf(seen.text)
    refused = bob.post(f"/incidents/{number}/escalate", data={"csrf": bob_token})
    assert refused.status_code == 403
    assert _incident(world, number)["owner_unit"] == "branch-a"
    unknown = ana.post(f"/incidents/{number}/share", data={"csrf": token, "unit": "nowhere"})
    assert unknown.status_code == 404

    up = ana.post(f"/incidents/{number}/escalate", data={"csrf": token, "reason": "too big"})
    assert up.status_code == 303, up.text
    after = _incident(world, number)
    assert after["owner_unit"] == "hq", after
    page = ana.get(f"/incidents/{number}").text
    assert "owner: hq" in page and f'action="/incidents/{number}/escalate"' not in page
    # No longer the owner: a second escalation is refused and changes nothing.
    again = ana.post(f"/incidents/{number}/escalate", data={"csrf": token})
    assert again.status_code == 403
    assert _incident(world, number)["owner_unit"] == "hq"


def _user_rows(html: str) -> dict[str, str]:
    body = re.search(r'<tbody id="users">(.*?)</tbody>', html, re.S)
    assert body, html[:2000]
    return dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", body.group(1)))


def test_admin_lists_the_users_of_its_units(world: World, ana: httpx.Client) -> None:
    with closing(_login(world, "chief")) as chief:
        rows = _user_rows(chief.get("/admin").text)
    assert rows == {"ana": "branch-a", "bob": "branch-b", "chief": "hq"}, rows
    made = world.api("POST", "/api/v1/tokens", json={"unit": "branch-a", "role": "admin"})
    assert made.status_code == 201, made.text
    branch = httpx.get(
        f"{world.centre.url}/admin",
        headers={**HTML, "Authorization": f"Bearer {made.json()['token']}"},
        timeout=60,
    )
    assert branch.status_code == 200
    assert _user_rows(branch.text) == {"ana": "branch-a"}
    refused = ana.get("/admin")
    assert refused.status_code == 403 and '<tbody id="users">' not in refused.text


def _section(html: str, title: str) -> str:
    pattern = rf'<section class="card" id="b(\d+)"[^>]*>\s*<h2 id="h-b\1">{re.escape(title)}</h2>'
    found = re.search(pattern + r".*?</section>", html, re.S)
    assert found, html[:3000]
    return found.group(0)


def test_bulletins_publish_ack_and_pending(
    world: World, ana: httpx.Client, bob: httpx.Client
) -> None:
    with closing(_login(world, "chief")) as chief:
        page = chief.get("/bulletins").text
        token = _csrf(page)
        assert 'action="/bulletins"' in page
        forged = chief.post("/bulletins", data={"csrf": "no", "title": "forged bulletin"})
        assert forged.status_code == 403
        done = chief.post(
            "/bulletins",
            data={"csrf": token, "title": "look for evil.example", "text": "seen at hq",
                  "observables": "domain: evil.example\n198.51.100.7",
                  "units": ["branch-a", "branch-b"]},
        )  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/bulletins?done=published"
        mine = _section(chief.get("/bulletins").text, "look for evil.example")
        assert "Not acknowledged yet: branch-a, branch-b" in mine
        number = int(re.search(r'id="b(\d+)"', mine).group(1))  # type: ignore[union-attr]
        only_a = chief.post(
            "/bulletins", data={"csrf": token, "title": "branch-a only", "units": "branch-a"}
        )
        assert only_a.status_code == 303

        seen = bob.get("/bulletins").text
        assert "branch-a only" not in seen
        theirs = _section(seen, "look for evil.example")
        assert "<code>evil.example</code>" in theirs and "<code>198.51.100.7</code>" in theirs
        assert "branch-a" not in theirs  # a target sees its own row, never the others
        listed = world.api("GET", "/api/v1/bulletins", params={"limit": 1000}).json()["items"]
        hidden = next(b["id"] for b in listed if b["title"] == "branch-a only")
        refused = bob.post(f"/bulletins/{hidden}/ack", data={"csrf": _csrf(seen)})
        assert refused.status_code == 404

        ack_form = f'action="/bulletins/{number}/ack"'
        assert ack_form in _section(ana.get("/bulletins").text, "look for evil.example")
        acked = ana.post(f"/bulletins/{number}/ack", data={"csrf": _csrf(ana.get("/alerts").text)})
        assert acked.status_code == 303, acked.text
        again = _section(ana.get("/bulletins").text, "look for evil.example")
        assert ack_form not in again and "Acknowledged" in again
        mine = _section(chief.get("/bulletins").text, "look for evil.example")
        assert "Not acknowledged yet: branch-b" in mine and "Pending" in mine
        vi = chief.get("/bulletins", params={"lang": "vi"})
        assert "Bản tin" in vi.text
        chief.get("/bulletins", params={"lang": "en"})
