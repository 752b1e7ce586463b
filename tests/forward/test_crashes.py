"""Exactly once across crashes: the forwarder SIGKILLed mid-file, the centre SIGKILLed
mid-stream. Real loghub lines, each with a unique marker, through the real centre."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fwdkit import (
    append,
    assert_exactly_once,
    forward_args,
    loghub,
    marked,
    run_forward,
    start_forward,
    stored_marks,
    wait_until,
)
from serverkit import Centre, add_token, make_centre


def _writer(path: Path, lines: list[str], seconds: float) -> threading.Thread:
    """A logging daemon appending ``lines`` over about ``seconds``."""

    def write() -> None:
        step = max(1, len(lines) // 40)
        for start in range(0, len(lines), step):
            append(path, lines[start : start + step])
            time.sleep(seconds / 40)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_forwarder_killed_mid_file_and_restarted_sends_every_line_once(tmp_path: Path) -> None:
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    log = tmp_path / "auth.log"
    first = marked(loghub("Linux"), "lin")
    second = marked(loghub("OpenSSH"), "ssh")
    log.write_text("\n".join(first) + "\n")
    state = tmp_path / "state"
    args = [*forward_args([log], centre, ingest, state), "--batch-size", "20"]
    centre.start()
    try:
        kills = []
        writer = None
        for round_ in range(3):
            forward = start_forward(args, tmp_path / f"forward-{round_}.log")
            if round_ == 0:
                writer = _writer(log, second, 6.0)
            # let it get part of the way, then pull the plug
            target = 600 * (round_ + 1)
            wait_until(
                lambda t=target: _count(centre, analyst) >= t,
                40,
                f"{target} events at the centre",
            )
            forward.kill()
            kills.append(_count(centre, analyst))
        assert writer is not None
        writer.join(30)
        done = run_forward([*args, "--once"])
        assert done.returncode == 0, done.stderr
        everything = first + second
        assert all(0 < k < len(everything) for k in kills), kills  # killed mid-stream
        centre.wait_stored(analyst, "branch-a", len(everything))
        assert_exactly_once(stored_marks(centre, analyst), everything)
    finally:
        centre.stop()


def _count(centre: Centre, token: str) -> int:
    """Events the centre acknowledged for branch-a (received, before storing)."""
    with centre.client(token) as http:
        units = http.get("/api/v1/units").json()["items"]
    return int(next(u for u in units if u["name"] == "branch-a")["events_received"])


def test_centre_killed_mid_stream_and_restarted_every_line_stored_once(tmp_path: Path) -> None:
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    log = tmp_path / "syslog"
    lines = marked(loghub("Linux") + loghub("OpenSSH"), "mix")
    log.write_text("")
    args = [*forward_args([log], centre, ingest, tmp_path / "state"), "--batch-size", "25"]
    centre.start()
    forward = start_forward(args, tmp_path / "forward.log")
    try:
        writer = _writer(log, lines, 8.0)
        wait_until(lambda: _count(centre, analyst) >= 800, 40, "800 events at the centre")
        centre.kill()
        time.sleep(2.0)  # the forwarder keeps reading into its buffer and retries
        centre.start()
        writer.join(30)
        centre.wait_stored(analyst, "branch-a", len(lines))
        assert "unavailable" in forward.log()
        assert forward.process.poll() is None, forward.log()  # it never gave up
        assert_exactly_once(stored_marks(centre, analyst), lines)
    finally:
        forward.kill()
        centre.stop()
