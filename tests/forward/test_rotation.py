"""Rotation while the forwarder runs and while it is stopped: rename (a new inode under the
name, the old file still written for a while), copytruncate (the same inode shrinks, or
shrinks and grows past the old position). No line is lost and none is sent twice."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fwdkit import (
    append,
    assert_exactly_once,
    forward_args,
    loghub,
    marked,
    start_forward,
    stored_marks,
    wait_until,
)
from serverkit import Centre, add_token, make_centre


def _received(centre: Centre, token: str) -> int:
    with centre.client(token) as http:
        units = http.get("/api/v1/units").json()["items"]
    return int(next(u for u in units if u["name"] == "branch-a")["events_received"])


def _truncate_and_write(path: Path, lines: list[str]) -> None:
    """copytruncate's second half, then the daemon's next writes in one go."""
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(("\n".join(lines) + "\n").encode())


def test_rename_and_copytruncate_while_running_and_while_stopped(tmp_path: Path) -> None:
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    linux, ssh = loghub("Linux"), loghub("OpenSSH")
    log, rotated, copy = tmp_path / "auth.log", tmp_path / "auth.log.1", tmp_path / "auth.log.2"
    sent: list[str] = []
    args = [*forward_args([log], centre, ingest, tmp_path / "state"), "--batch-size", "50"]

    def expect(lines: list[str]) -> None:
        sent.extend(lines)
        wait_until(lambda: _received(centre, analyst) >= len(sent), 40, f"{len(sent)} events")

    centre.start()
    forward = start_forward(args, tmp_path / "forward-1.log")
    try:
        # running: rename rotation; the daemon writes on into the renamed file before reopening
        first = marked(linux[:500], "a")
        append(log, first)
        expect(first)
        os.rename(log, rotated)
        late, fresh = marked(linux[500:600], "b"), marked(linux[600:1100], "c")
        append(rotated, late)
        append(log, fresh)
        expect(late + fresh)
        # running: copytruncate, then more than was there before, written at once
        shutil.copy(log, copy)
        regrown = marked(ssh[:800], "d")
        _truncate_and_write(log, regrown)
        expect(regrown)
        # running: copytruncate, then fewer lines than before
        shutil.copy(log, copy)
        shrunk = marked(ssh[800:850], "e")
        _truncate_and_write(log, shrunk)
        expect(shrunk)
        forward.process.terminate()
        assert forward.wait() == 0, forward.log()

        # stopped: unread lines, then a rename rotation and a new file
        unread, newer = marked(ssh[850:1000], "f"), marked(ssh[1000:1300], "g")
        append(log, unread)
        os.replace(log, rotated)
        append(log, newer)
        forward = start_forward(args, tmp_path / "forward-2.log")
        expect(unread + newer)
        forward.process.terminate()
        assert forward.wait() == 0, forward.log()

        # stopped: copytruncate and regrowth past the saved position (same inode, same size
        # or more: only the bytes before the position tell it is another content)
        regrown_again = marked(ssh[1300:2000], "h")
        _truncate_and_write(log, regrown_again)
        forward = start_forward(args, tmp_path / "forward-3.log")
        expect(regrown_again)
        centre.wait_stored(analyst, "branch-a", len(sent))
        assert_exactly_once(stored_marks(centre, analyst), sent)
        logs = (tmp_path / "forward-1.log").read_text() + forward.log()
        assert logs.count("was truncated or replaced") == 3, logs
    finally:
        forward.kill()
        centre.stop()
