"""``vedette serve --worker-process``: the worker in a child process, through the real server.

SIGKILL of the centre mid-stream takes the child with it and loses or doubles nothing; the
child's figures show on /metrics; a rules reload and SIGHUP restart the child on the new rules;
a clean stop leaves no child behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest
from serverkit import Centre, add_token
from test_durability import (
    Sender,
    _wait_until,
    assert_exactly_once,
    centres,  # noqa: F401 (fixture)
    detections_by_rule,
    make_batches,
    metric,
    new_centre,
    windows_records,
)

pytestmark = pytest.mark.embedded_only(
    "the embedded centre's detection child process; scale-out workers: tests/scaleout"
)

WORKER = ["--worker-process"]


def child_pid(centre: Centre) -> int:
    """The worker child's pid, as it writes it in its stats file."""
    path = centre.home / "run" / "worker-stats.json"
    assert _wait_until(path.exists, 60), centre.log()
    return int(orjson.loads(path.read_bytes())["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent (the killed centre) is gone, init reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_sigkill_takes_the_child_along_and_every_acknowledged_event_is_stored_once(
    tmp_path: Path,
    centres: list[Centre],  # noqa: F811
) -> None:
    records = windows_records()[:12_000]
    # The reference: the worker as a thread (the same detections are expected of the child).
    reference = new_centre(tmp_path / "reference", centres, ["--no-worker-process"])
    ref_ingest = add_token(reference.home, "branch-a", "ingest")
    ref_analyst = add_token(reference.home, "hq", "analyst")
    reference.start()
    ref_batches = make_batches(records, 1000, "wp")
    Sender(reference, ref_ingest, ref_batches).start().join()
    assert_exactly_once(reference, ref_analyst, ref_batches)
    expected = detections_by_rule(reference, ref_analyst)
    assert sum(expected.values()) > 10, expected
    reference.kill()

    centre = new_centre(tmp_path / "crash", centres, WORKER)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    first_child = child_pid(centre)
    batches = make_batches(records, 40, "wp")
    sender = Sender(centre, ingest, batches, deadline=90).start()
    _wait_until(lambda: sender.acked_count() >= len(batches) // 3, 30)
    centre.kill()
    # PR_SET_PDEATHSIG: the child is killed with its parent.
    assert _wait_until(lambda: not alive(first_child), 10), "the worker child outlived SIGKILL"
    centre.start()
    assert child_pid(centre) != first_child
    sender.join()
    assert_exactly_once(centre, analyst, batches)
    assert detections_by_rule(centre, analyst) == expected
    assert sender.transport_errors > 0, sender.answers


def test_figures_reload_and_clean_stop(tmp_path: Path, centres: list[Centre]) -> None:  # noqa: F811
    centre = new_centre(tmp_path / "home", centres, WORKER)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    batches = make_batches(windows_records()[:2000], 500, "fig")
    Sender(centre, ingest, batches).start().join()
    assert_exactly_once(centre, analyst, batches)
    # The child's counters reach the API process's /metrics (written once a second).
    assert _wait_until(lambda: metric(centre, "vedette_events_processed_total") != "", 10), (
        centre.log()
    )
    assert _wait_until(
        lambda: float(metric(centre, "vedette_events_processed_total").split()[-1]) >= 2000, 10
    ), metric(centre, "vedette_events_processed")
    assert _wait_until(lambda: metric(centre, "vedette_spool_depth_events") != "", 5)
    # The API process releases the spool up to what the child committed.
    assert _wait_until(
        lambda: float(metric(centre, "vedette_spool_depth_events").split()[-1]) == 0, 10
    ), metric(centre, "vedette_spool_depth_events")
    before = detections_by_rule(centre, analyst)
    assert before, "no detection through the worker child"
    assert httpx.get(centre.url + "/readyz", timeout=10).status_code == 200

    # A reload through the API restarts the child; detection goes on with it.
    admin = add_token(centre.home, "hq", "admin")
    first = child_pid(centre)
    with centre.client(admin) as http:
        assert http.post("/api/v1/rules/reload").status_code == 200
    assert _wait_until(lambda: child_pid(centre) != first, 60), centre.log()
    assert not alive(first)
    second = child_pid(centre)
    # SIGHUP does the same.
    assert centre.process is not None
    centre.process.send_signal(signal.SIGHUP)
    assert _wait_until(lambda: child_pid(centre) != second, 60), centre.log()
    more = make_batches(windows_records()[:2000], 500, "again")
    Sender(centre, ingest, more).start().join()
    assert_exactly_once(centre, analyst, [*batches, *more])
    after = detections_by_rule(centre, analyst)
    assert after == before + before, (before, after)

    # SIGTERM: exit 0, and no child left behind.
    third = child_pid(centre)
    assert centre.stop() == 0, centre.log()
    assert "Traceback" not in centre.log(), centre.log()
    time.sleep(0.2)
    assert not alive(third)
