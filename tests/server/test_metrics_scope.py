"""/metrics keeps units apart: anonymous scrapes see totals, a token sees its own units only."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from serverkit import add_token, make_centre

pytestmark = [
    pytest.mark.contract,
    pytest.mark.scaleout_excluded(
        "events_received counts what the workers committed in scale-out, "
        "not the api's acknowledgements"
    ),
]

LINE = b"<34>1 2026-01-01T00:00:00Z h sshd 42 - - Accepted password for bob from 192.0.2.7\n"


def test_metrics_name_only_the_units_the_scraper_covers(tmp_path: Path) -> None:
    centre = make_centre(
        tmp_path / "home",
        units=(("hq", None), ("north", "hq"), ("south", "hq")),
    )
    senders = {u: add_token(centre.home, u, "ingest") for u in ("north", "south")}
    north_viewer = add_token(centre.home, "north", "viewer")
    root_viewer = add_token(centre.home, "hq", "viewer")
    centre.start()
    try:
        for unit, count in (("north", 3), ("south", 5)):
            with centre.client(senders[unit]) as http:
                answer = http.post(
                    "/api/v1/events", content=LINE * count, headers={"Content-Type": "text/plain"}
                )
                assert answer.status_code == 202, answer.text
        centre.wait_stored(root_viewer, "south", 5)
        centre.wait_stored(root_viewer, "north", 3)
        anonymous = httpx.get(centre.url + "/metrics").text
        assert "north" not in anonymous and "south" not in anonymous
        assert re.search(r"^vedette_events_received_total 8\.0$", anonymous, re.M), anonymous
        with centre.client(north_viewer) as http:
            scoped = http.get("/metrics").text
        assert re.search(r'^vedette_events_received_total\{unit="north"\} 3\.0$', scoped, re.M)
        assert "south" not in scoped
        with centre.client(root_viewer) as http:
            everything = http.get("/metrics").text
        assert re.search(r'^vedette_events_received_total\{unit="south"\} 5\.0$', everything, re.M)
        # Stored as the worker committed it with the Parquet files, per unit.
        assert re.search(r'^vedette_events_stored_total\{unit="south"\} 5\.0$', everything, re.M)
        assert re.search(r'^vedette_events_stored_total\{unit="north"\} 3\.0$', everything, re.M)
        assert re.search(r"^vedette_events_stored_total 8\.0$", anonymous, re.M), anonymous
        assert (
            httpx.get(
                centre.url + "/metrics", headers={"Authorization": "Bearer vdt_wrong"}
            ).status_code
            == 401
        )
    finally:
        centre.stop()
