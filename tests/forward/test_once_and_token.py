"""``vedette forward --once`` through a real centre, and a bad token."""

from __future__ import annotations

from pathlib import Path

import orjson
from fwdkit import assert_exactly_once, forward_args, loghub, marked, run_forward, stored_marks
from serverkit import add_token, make_centre


def test_once_sends_a_syslog_file_and_a_jsonl_file_and_a_rerun_sends_nothing(
    tmp_path: Path,
) -> None:
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = marked(loghub("OpenSSH")[:500], "ssh")
    (logs / "auth.log").write_text("\n".join(lines) + "\n")
    # JSON lines (a bad line among them goes as text, never blocks the file)
    records = [
        orjson.dumps({"message": m, "host": "web-1"}).decode()
        for m in marked(loghub("Linux")[:300], "json")
    ]
    records.insert(10, "{not json fwdmark=bad-0")
    (logs / "app.jsonl").write_text("\n".join(records) + "\n")
    lines += records
    centre.start()
    try:
        args = forward_args([logs], centre, ingest, tmp_path / "state")
        done = run_forward([*args, "--once"])
        assert done.returncode == 0, done.stderr
        assert "801 sent" in done.stderr and "backlog 0 batches" in done.stderr, done.stderr
        centre.wait_stored(analyst, "branch-a", len(lines))
        assert_exactly_once(stored_marks(centre, analyst), lines)
        again = run_forward([*args, "--once"])
        assert again.returncode == 0 and "0 records read" in again.stderr, again.stderr
    finally:
        centre.stop()


def test_a_bad_token_exits_non_zero_with_a_message_and_keeps_the_lines(tmp_path: Path) -> None:
    centre = make_centre(tmp_path / "home")
    logs = tmp_path / "auth.log"
    logs.write_text("\n".join(marked(loghub("Linux")[:50], "lin")) + "\n")
    centre.start()
    try:
        args = forward_args([logs], centre, "not-a-token", tmp_path / "state")
        done = run_forward(args, timeout=60)  # no --once: it must stop by itself
        assert done.returncode == 3, done.stderr
        assert "the centre refused the token (401" in done.stderr, done.stderr
        assert "backlog 1 batch / 50 records" in done.stderr, done.stderr
    finally:
        centre.stop()
