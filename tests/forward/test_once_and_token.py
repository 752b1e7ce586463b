"""``vedette forward --once`` through a real centre, and a bad token."""

from __future__ import annotations

import shutil
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


def test_a_buffer_resent_after_a_lost_acknowledgement_is_answered_as_duplicates(
    tmp_path: Path,
) -> None:
    # The crash window between "the centre stored the batch" and "the forwarder dropped it from
    # its buffer", made exact: a copy of the state folder taken while the batches were buffered
    # but unsent is run again after the original was sent; the same keys come back.
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    log = tmp_path / "auth.log"
    lines = marked(loghub("OpenSSH")[:400], "ssh")
    log.write_text("\n".join(lines) + "\n")
    centre.start()
    try:
        refused = run_forward(forward_args([log], centre, "revoked", tmp_path / "state"))
        assert refused.returncode == 3 and "400 records" in refused.stderr, refused.stderr
        shutil.copytree(tmp_path / "state", tmp_path / "state-copy")
        for state in ("state", "state-copy"):
            done = run_forward([*forward_args([log], centre, ingest, tmp_path / state), "--once"])
            assert done.returncode == 0, done.stderr
            sent = "400 sent, 0 already" if state == "state" else "0 sent, 400 already"
            assert sent in done.stderr, done.stderr
        centre.wait_stored(analyst, "branch-a", len(lines))
        assert_exactly_once(stored_marks(centre, analyst), lines)
    finally:
        centre.stop()


def test_a_unit_over_its_quota_is_answered_429_and_the_forwarder_waits_and_finishes(
    tmp_path: Path,
) -> None:
    centre = make_centre(tmp_path / "home", args=["--unit-quota", "150"])  # burst: 1,500
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    log = tmp_path / "syslog"
    lines = marked(loghub("Linux"), "lin")
    log.write_text("\n".join(lines) + "\n")
    centre.start()
    try:
        args = [*forward_args([log], centre, ingest, tmp_path / "state"), "--batch-size", "100"]
        done = run_forward([*args, "--once"])
        assert done.returncode == 0, done.stderr
        assert "centre answered 429" in done.stderr, done.stderr
        centre.wait_stored(analyst, "branch-a", len(lines))
        assert_exactly_once(stored_marks(centre, analyst), lines)
    finally:
        centre.stop()
