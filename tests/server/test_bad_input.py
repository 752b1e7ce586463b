"""Bad input to ``POST /api/v1/events`` over real HTTP: refused whole and named, or stored safely.

One real ``vedette serve`` for the module. A refused batch must leave nothing behind: each
batch carries a marker, and after a later good batch of the same unit is stored (the worker
keeps order within a unit), a hunt for the marker finds nothing and the unit's received count
did not move.
"""

from __future__ import annotations

import gzip
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import Centre, add_token, make_centre

pytestmark = pytest.mark.contract

NDJSON = {"Content-Type": "application/x-ndjson"}
LIMIT = 32 * 1024 * 1024  # ServeConfig.max_body_bytes, the default `vedette serve` runs with
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07" / "sysmon.jsonl"


class Server:
    """The running centre with a north ingest token and the centre admin's."""

    def __init__(self, centre: Centre, ingest: str, root: str) -> None:
        self.centre = centre
        self.ingest = ingest
        self.root = root
        self.accepted = 0
        """Events of north acknowledged so far (every one this module sent)."""

    def send(
        self,
        content: Any,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        **headers: str,
    ) -> httpx.Response:
        with self.centre.client(token or self.ingest) as http:
            answer = http.post(
                "/api/v1/events", content=content, params=params, headers={**NDJSON, **headers}
            )
        if answer.status_code == 202:
            self.accepted += int(answer.json()["accepted"])
        return answer

    def received(self) -> int:
        with self.centre.client(self.root) as http:
            units = http.get("/api/v1/units").json()["items"]
        return int(next(u for u in units if u["name"] == "north")["events_received"])

    def settle(self) -> None:
        """Send one good event and wait until north stored everything acknowledged (not
        what /units says it received: the scale-out set counts a batch received when a worker
        commits it, so right after a 202 the count may not show it yet)."""
        answer = self.send(_line(marker="settle"))
        assert answer.status_code == 202, answer.text
        self.centre.wait_stored(self.root, "north", self.accepted)

    def hunt(self, marker: str) -> list[list[Any]]:
        sql = (
            "SELECT source_format, product, fields, raw FROM events "
            f"WHERE fields LIKE '%{marker}%' OR raw LIKE '%{marker}%'"
        )
        with self.centre.client(self.root) as http:
            answer = http.post("/api/v1/hunt", json={"sql": sql})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["rows"])

    def unclassified_reaches(self, target: float, timeout: float = 15.0) -> bool:
        """Whether the counter gets to ``target``: the worker (a child process by default)
        publishes its counters once a second, so /metrics trails the store by a moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.unclassified() >= target:
                return True
            time.sleep(0.2)
        return self.unclassified() >= target

    def unclassified(self) -> float:
        # Per-unit series are shown to a token that covers the unit (anonymous: totals only).
        with self.centre.client(self.root) as http:
            metrics = http.get("/metrics", timeout=30).text
        found = re.search(
            r'^vedette_events_unclassified_total\{unit="north"\} (\S+)$', metrics, re.M
        )
        return float(found.group(1)) if found else 0.0


def _line(**fields: Any) -> bytes:
    return orjson.dumps({"EventID": 1, "Computer": "ws-1", **fields}) + b"\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("badinput") / "home"
    centre = make_centre(home, units=(("centre", None), ("north", "centre")))
    ingest = add_token(home, "north", "ingest")
    root = add_token(home, "centre", "admin")
    centre.start()
    try:
        yield Server(centre, ingest, root)
    finally:
        centre.stop()


def _refused_and_not_stored(
    server: Server, answer: httpx.Response, status: int, marker: str
) -> None:
    before = server.received()
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    server.settle()
    assert server.received() == before + 1  # only the settling event
    assert server.hunt(marker) == []


def test_malformed_json_mid_batch_is_400_naming_the_line_and_stores_nothing(
    server: Server,
) -> None:
    marker = uuid.uuid4().hex
    body = _line(marker=marker) * 2 + b'{"EventID": 1, "broken": \n' + _line(marker=marker)
    answer = server.send(body)
    _refused_and_not_stored(server, answer, 400, marker)
    assert answer.json()["line"] == 3 and "line 3" in answer.json()["message"]


def test_a_line_that_is_json_but_no_object_is_400_naming_it(server: Server) -> None:
    marker = uuid.uuid4().hex
    answer = server.send(_line(marker=marker) + b"[1, 2]\n" + _line(marker=marker))
    _refused_and_not_stored(server, answer, 400, marker)
    assert answer.json()["line"] == 2


def test_json_array_with_a_non_object_is_400_naming_the_element(server: Server) -> None:
    marker = uuid.uuid4().hex
    body = orjson.dumps([{"EventID": 1, "marker": marker}, "text", {"marker": marker}])
    answer = server.send(body, **{"Content-Type": "application/json"})
    _refused_and_not_stored(server, answer, 400, marker)
    assert "element 1" in answer.json()["message"]


def test_oversize_body_by_content_length_is_413(server: Server) -> None:
    marker = uuid.uuid4().hex
    body = _line(marker=marker, pad="x" * 1000) * (LIMIT // 1000 + 10)
    assert len(body) > LIMIT
    answer = server.send(body)
    _refused_and_not_stored(server, answer, 413, marker)


def test_oversize_chunked_body_is_413(server: Server) -> None:
    marker = uuid.uuid4().hex
    line = _line(marker=marker, pad="x" * 60_000)

    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // len(line) + 50):
            yield line

    try:
        answer = server.send(chunks())
    except httpx.WriteError:
        # The server may answer and close before the client finished sending: then the
        # answer is lost to this client, but what must hold still holds below.
        answer = None
    if answer is not None:
        assert answer.status_code == 413, answer.text
    before = server.received()
    server.settle()
    assert server.received() == before + 1
    assert server.hunt(marker) == []


def test_gzip_bomb_is_413(server: Server) -> None:
    marker = uuid.uuid4().hex
    bomb = gzip.compress(_line(marker=marker) + b" " * (LIMIT * 2), compresslevel=9)
    assert len(bomb) < LIMIT // 100
    answer = server.send(bomb, **{"Content-Encoding": "gzip"})
    _refused_and_not_stored(server, answer, 413, marker)


def test_corrupt_gzip_is_400(server: Server) -> None:
    marker = uuid.uuid4().hex
    body = gzip.compress(_line(marker=marker))
    answer = server.send(body[:-12] + b"\x00" * 12, **{"Content-Encoding": "gzip"})
    _refused_and_not_stored(server, answer, 400, marker)


@pytest.mark.parametrize("content_type", ["application/xml", "text/html", "multipart/form-data"])
def test_wrong_content_type_is_415(server: Server, content_type: str) -> None:
    marker = uuid.uuid4().hex
    answer = server.send(_line(marker=marker), **{"Content-Type": content_type})
    _refused_and_not_stored(server, answer, 415, marker)


def test_a_wrong_token_is_401(server: Server) -> None:
    marker = uuid.uuid4().hex
    answer = server.send(_line(marker=marker), token="vdt_not-a-token")
    _refused_and_not_stored(server, answer, 401, marker)


def test_a_revoked_token_is_401(server: Server) -> None:
    with server.centre.client(server.root) as http:
        made = http.post("/api/v1/tokens", json={"unit": "north", "role": "ingest"}).json()
    assert server.send(_line(marker="before-revoke"), token=made["token"]).status_code == 202
    with server.centre.client(server.root) as http:
        assert http.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    marker = uuid.uuid4().hex
    answer = server.send(_line(marker=marker), token=made["token"])
    _refused_and_not_stored(server, answer, 401, marker)


def test_json_in_no_known_layout_is_stored_and_counted(server: Server) -> None:
    marker = uuid.uuid4().hex
    before = server.unclassified()
    body = orjson.dumps({"weird": {"shape": [1, 2]}, "marker": marker}) + b"\n"
    assert server.send(body).status_code == 202
    server.settle()
    rows = server.hunt(marker)
    assert len(rows) == 1 and marker in rows[0][2]
    assert server.unclassified_reaches(before + 1)


def test_a_text_line_that_is_no_syslog_is_stored_raw_and_counted(server: Server) -> None:
    marker = uuid.uuid4().hex
    before = server.unclassified()
    line = f"\x1b[31m}}{{ not syslog at all {marker} \u202e<tag>".encode()
    answer = server.send(line + b"\n", **{"Content-Type": "text/plain"})
    assert answer.status_code == 202, answer.text
    server.settle()
    rows = server.hunt(marker)
    assert len(rows) == 1, rows
    stored = rows[0][3] or orjson.loads(rows[0][2]).get("raw")
    assert stored == line.decode()
    assert server.unclassified_reaches(before + 1)


def test_html_and_script_in_fields_come_back_as_json_data(server: Server) -> None:
    script = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>\"'&"
    lines = [orjson.loads(raw) for raw in SAMPLE.read_bytes().splitlines() if raw.strip()]
    for record in lines:
        data = record["Event"].get("EventData") or {}
        # Only fields the sample's rules do not match on, so that the alerts still fire.
        for name in ("User", "SourceUser", "TargetUser"):
            if isinstance(data.get(name), str):
                data[name] += script
    body = b"".join(orjson.dumps(record) + b"\n" for record in lines)
    answer = server.send(body, token=server.root, params={"unit": "north"})
    assert answer.status_code == 202, answer.text
    server.centre.wait_stored(server.root, "north", server.accepted)
    with server.centre.client(server.root) as http:
        hunted = http.post(
            "/api/v1/hunt",
            json={"sql": "SELECT fields->>'User' AS u FROM events WHERE u LIKE '%<script>%'"},
        )
        alerts = http.get("/api/v1/alerts", params={"limit": 1000})
        assert alerts.status_code == 200, alerts.text
        details = [http.get(f"/api/v1/alerts/{a['id']}") for a in alerts.json()["items"]]
    assert hunted.status_code == 200 and hunted.headers["content-type"] == "application/json"
    rows = hunted.json()["rows"]
    assert rows and all(row[0].endswith(script) for row in rows), rows
    assert details, "the sample raised no alert"
    for detail in details:
        assert detail.status_code == 200, detail.text
        assert detail.headers["content-type"] == "application/json"
    carried = [
        d
        for d in details
        if any(str(v).endswith(script) for v in d.json()["sample_event"].values())
    ]
    assert carried, "no alert's sample event carries the field as sent"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/alerts/{}"),
        ("PATCH", "/api/v1/alerts/{}"),
        ("GET", "/api/v1/incidents/{}"),
        ("DELETE", "/api/v1/exceptions/{}"),
        ("DELETE", "/api/v1/notifications/channels/{}"),
    ],
)
def test_an_id_past_32_bits_is_invalid_and_the_largest_is_not_found(
    server: Server, method: str, path: str
) -> None:
    # Ids are INTEGER columns, 32 bits on PostgreSQL: a larger one made it raise (500).
    body = {"status": "acknowledged"} if method == "PATCH" else None
    with server.centre.client(server.root) as http:
        past = http.request(method, path.format(2**31), json=body)
        largest = http.request(method, path.format(2**31 - 1), json=body)
    assert past.status_code == 400 and past.json()["error"] == "invalid", past.text
    assert largest.status_code == 404, largest.text


def test_text_with_a_nul_character_is_refused_or_kept_never_a_server_error(
    server: Server,
) -> None:
    # PostgreSQL refuses NUL in text (SQLite keeps it): a 400 there, never a 500.
    with server.centre.client(server.root) as http:
        login = http.post("/api/v1/auth/login", json={"name": "a\x00b", "password": "x" * 12})
        bulletin = http.post(
            "/api/v1/bulletins", json={"title": "nul \x00 inside", "text": "and \x00 here"}
        )
        listed = http.get("/api/v1/bulletins")
    assert login.status_code in (400, 401), login.text
    assert bulletin.status_code in (201, 400), bulletin.text
    if bulletin.status_code == 400:
        assert bulletin.json()["error"] == "invalid", bulletin.text
    assert listed.status_code == 200, listed.text
