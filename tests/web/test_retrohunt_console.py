"""Retro-hunts in the console (Chromium against a real ``vedette serve``): an analyst starts one
from the hunt page over events stored earlier and watches its progress reach done with hits,
without a reload; another unit's user can neither see nor cancel it by URL. Also on the
console's detail pages: an alert shows its ATT&CK technique's description.

The runner has two threads: two long "blocker" jobs of the centre (over many generated days of
another unit, cancelled by the test) hold them while the analyst's job is started, so the hunt
page always first shows that job queued, and what the page then shows comes from its polling.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from webkit import World, login, lsass_event, submit

from vedette.store.eventstore import ParquetEventStore

pytestmark = pytest.mark.contract

MARKED_RULE = """\
title: Console retro-hunt marker
id: 6f1c3b0e-2d7a-4c5e-9b8f-1a2b3c4d5e6f
status: test
logsource:
    product: windows
    category: process_access
detection:
    selection:
        TargetImage|endswith: '\\lsass.exe'
        RetroMarker: '{marker}'
    condition: selection
level: high
tags:
    - attack.credential-access
    - attack.t1003.001
"""
BLOCKER_RULE = """\
title: Console retro-hunt blocker
id: 0b7d2c4e-8f1a-4e3b-a5c6-d7e8f9a0b1c2
status: test
logsource:
    product: windows
    category: process_access
detection:
    selection:
        TargetImage|endswith: '\\nowhere-at-all.exe'
    condition: selection
level: low
"""
BLOCKER_UNIT = "branch-a-1"
BLOCKER_DAYS = 40
BLOCKER_ROWS = 5000


def _stored(world: World, unit: str) -> int:
    units = world.api("GET", "/api/v1/units").json()["items"]
    return int(next(u for u in units if u["name"] == unit)["events_stored"])


def _many_days(world: World, source_unit: str, unit: str) -> None:
    """Write :data:`BLOCKER_DAYS` day files of real stored events (``source_unit``'s, retimed
    into 2024) for ``unit`` straight into the event store: a long job to read."""
    folder = world.centre.home / "events" / f"unit={source_unit}"
    source = pa.concat_tables(pq.read_table(p) for p in sorted(folder.rglob("part-*.parquet")))
    base = source.take([i % source.num_rows for i in range(BLOCKER_ROWS)])
    store = ParquetEventStore(world.centre.home / "events")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    names = base.schema.names
    for n in range(BLOCKER_DAYS):
        day = start + timedelta(days=n)
        table = base.set_column(names.index("unit"), "unit", pa.array([unit] * BLOCKER_ROWS))
        table = table.set_column(
            names.index("day"), "day", pa.array([day.date().isoformat()] * BLOCKER_ROWS)
        )
        times = [day + timedelta(seconds=i) for i in range(BLOCKER_ROWS)]
        table = table.set_column(
            names.index("time"), "time", pa.array(times, base.schema.field("time").type)
        )
        store.write(table, 0, 0)


def _start_blockers(world: World) -> list[int]:
    ids = []
    for _ in range(2):
        answer = world.api(
            "POST",
            "/api/v1/retrohunts",
            json={"rule": BLOCKER_RULE, "units": [BLOCKER_UNIT], "title": "blocker",
                  "from": "2023-12-31T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        ids.append(int(answer.json()["id"]))
    return ids


def _job(world: World, job_id: int) -> dict[str, Any]:
    answer = world.api("GET", f"/api/v1/retrohunts/{job_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_an_analyst_starts_a_retrohunt_and_watches_it_finish_with_hits(
    browser: Any, world: World
) -> None:
    marker = f"retro-{uuid.uuid4().hex[:12]}"
    hosts = [f"retro-{i}.corp.example" for i in range(3)]
    before = _stored(world, "branch-a")
    world.send("branch-a", b"".join(lsass_event(h, RetroMarker=marker) for h in hosts))
    world.centre.wait_stored(world.root, "branch-a", before + len(hosts), timeout=120)
    _many_days(world, "branch-a", BLOCKER_UNIT)

    page = login(browser, world, "ana")  # branch-a, analyst
    page.goto(world.centre.url + "/hunt")
    page.fill("#r-rule", MARKED_RULE.format(marker=marker))
    page.select_option("#r-units", "branch-a")
    page.fill("#r-title", f"Hunt {marker}")
    blockers = _start_blockers(world)
    try:
        submit(page, "#retro-start")
        found = re.search(r"/hunt\?started=(\d+)#h-jobs$", page.url)
        assert found, (page.url, page.inner_text("main")[:2000])
        job_id = int(found.group(1))
        row = page.locator(f'#retrohunts tr[data-job="{job_id}"]')
        # Both runner threads are busy: the job is queued as the page shows it first.
        assert row.get_attribute("data-finished") == "0", row.inner_text()
        assert _job(world, job_id)["status"] == "queued"
        assert "queued" in row.locator('[data-field="status"]').inner_text()
        page.evaluate("window.__sameDocument = true")

        _another_unit_cannot_see_or_cancel(browser, world, job_id, marker)
    finally:
        for blocker in blockers:
            world.api("POST", f"/api/v1/retrohunts/{blocker}/cancel")
    done = row.locator('[data-field="status"].status-done')
    done.wait_for(timeout=180_000)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    assert row.get_attribute("data-finished") == "1"
    assert row.locator('[data-field="hits"]').inner_text() == str(len(hosts))
    assert row.locator('[data-field="units"]').inner_text() == "1 of 1 units"
    assert int(row.locator('[data-field="events"]').inner_text().replace(",", "")) >= len(hosts)
    assert row.locator("form.cancel").count() == 0  # nothing left to cancel
    job = _job(world, job_id)
    assert (job["status"], job["hits"], job["units"]) == ("done", len(hosts), ["branch-a"])
    assert job["days_done"] == job["days_total"] >= 1
    assert row.locator('[data-field="alerts"]').inner_text() == str(len(job["alert_ids"]))

    # The job's page links the alerts it raised.
    row.locator("a", has_text=f"Hunt {marker}").click()
    page.wait_for_url(f"**/hunt/retrohunts/{job_id}")
    raised = page.locator("#h-job-alerts ~ table a")
    assert raised.count() == len(job["alert_ids"]) >= 1
    first = raised.first.get_attribute("href")
    assert first is not None and int(first.rsplit("/", 1)[1]) in job["alert_ids"]
    assert "Console retro-hunt marker" in page.inner_text("#h-job-alerts ~ table")
    page.context.close()


def _another_unit_cannot_see_or_cancel(
    browser: Any, world: World, job_id: int, marker: str
) -> None:
    """bob (branch-b) gets 404 for branch-a's queued job by URL, and his cancel changes nothing."""
    other = login(browser, world, "bob")
    answer = other.goto(f"{world.centre.url}/hunt/retrohunts/{job_id}")
    assert answer is not None and answer.status == 404
    assert marker not in other.content()
    other.goto(world.centre.url + "/hunt")
    assert marker not in other.content()
    assert other.locator(f'tr[data-job="{job_id}"]').count() == 0
    csrf = other.locator('#retro-form input[name="csrf"]').get_attribute("value")
    refused = other.request.post(
        f"{world.centre.url}/hunt/retrohunts/{job_id}/cancel",
        form={"csrf": csrf or ""},
        headers={"Accept": "text/html"},
        max_redirects=0,
    )
    assert refused.status == 404, refused.text()[:500]
    polled = other.request.get(f"{world.centre.url}/console/retrohunts?ids={job_id}")
    assert polled.status == 200 and polled.json() == {"items": []}
    assert _job(world, job_id)["status"] == "queued"  # not cancelled
    other.context.close()


def test_the_alert_page_shows_the_techniques_description(browser: Any, world: World) -> None:
    host = "describe-01.corp.example"
    world.send("branch-a", lsass_event(host))
    alert = world.wait_alert("branch-a", host)
    techniques = {
        t["id"] for t in world.api("GET", f"/api/v1/alerts/{alert['id']}").json()["attack"]
    }
    assert "T1003.001" in techniques, techniques
    page = login(browser, world, "ana")
    page.goto(f"{world.centre.url}/alerts/{alert['id']}?lang=vi")
    item = page.locator("#h-attack ~ ul li", has_text="T1003.001")
    description = item.locator("p.technique")
    assert description.get_attribute("lang") == "en"
    text = description.inner_text()
    assert text.startswith(
        "Adversaries may attempt to access credential material stored in the process memory of"
        " the Local Security Authority Subsystem Service (LSASS)"
    ), text
    assert "(Citation:" not in text and "](" not in text and len(text) <= 320
    page.context.close()
