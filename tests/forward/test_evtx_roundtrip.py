"""EVTX events sent as JSON records come out at the centre's record parser as the same events,
with the same Sigma detections as reading the EVTX files; an EVTX file dropped into a
watched folder reaches a real centre whole and once."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import orjson
from fwdkit import forward_args, start_forward, wait_until
from serverkit import add_token, make_centre

from datasets import dataset
from vedette.events import Event
from vedette.forward.evtx import evtx_records
from vedette.pipeline.build import DetectorConfig, build_detector
from vedette.sources import ReadReport, read_events
from vedette.sources.records import RecordParser


def _key(event: Event) -> tuple[object, ...]:
    return (event.fields, event.logsource, event.timestamp, event.host)


def test_evtx_records_round_trip_to_the_same_events_and_detections(tmp_path: Path) -> None:
    rules = dataset("sigma", "rules", "windows")
    detector, facts = build_detector(
        DetectorConfig(
            rule_paths=(rules / "process_access", rules / "builtin"), cache_dir=tmp_path / "c"
        )
    )
    assert facts.rules_loaded > 100
    files = sorted(dataset("evtx-attack-samples", "Credential Access").glob("*.evtx"))
    scanned: list[Event] = []
    forwarded: list[Event] = []
    for path in files:
        scanned += [e for batch in read_events(path, report=ReadReport()) for e in batch]
        parser = RecordParser(origin="branch-a/http")
        for _, record in evtx_records(path, 0, ReadReport()):
            # as on the wire: one NDJSON line, parsed by the centre's record parser
            forwarded.append(parser.json_record(orjson.loads(orjson.dumps(record))))
    assert len(forwarded) == len(scanned) > 500
    assert [_key(e) for e in forwarded] == [_key(e) for e in scanned]

    def detections(events: list[Event]) -> Counter[tuple[str, int]]:
        index = {id(e): i for i, e in enumerate(events)}
        return Counter((d.rule_id, index[id(d.event)]) for d in detector.match(events))

    found = detections(scanned)
    assert sum(found.values()) > 20
    assert detections(forwarded) == found


def test_an_evtx_file_dropped_into_a_watched_folder_is_stored_once(tmp_path: Path) -> None:
    source = dataset(
        "evtx-attack-samples", "Credential Access", "CA_hashdump_4663_4656_lsass_access.evtx"
    )
    record_ids = sorted(
        int(e.source.record_id)
        for batch in read_events(source, report=ReadReport())
        for e in batch
        if e.source is not None and e.source.record_id is not None
    )
    assert record_ids
    centre = make_centre(tmp_path / "home")
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    drop = tmp_path / "drop"
    drop.mkdir()
    centre.start()
    forward = start_forward(
        forward_args([drop], centre, ingest, tmp_path / "state"), tmp_path / "forward.log"
    )
    try:
        # copied under a temporary name, then renamed into place, as a collector does
        shutil.copy(source, drop / "lsass.evtx.partial")
        (drop / "lsass.evtx.partial").rename(drop / "lsass.evtx")
        centre.wait_stored(analyst, "branch-a", len(record_ids))
        with centre.client(analyst) as http:
            rows = http.post(
                "/api/v1/hunt",
                json={"sql": "select record_id, product from events order by record_id"},
            ).json()["rows"]
        assert [r[0] for r in rows] == record_ids
        assert {r[1] for r in rows} == {"windows"}
        forward.process.terminate()
        assert forward.wait() == 0
        wait_until(lambda: "backlog 0 batches" in forward.log(), 5, "the last progress line")
        assert f"{len(record_ids):,} records read" in forward.log()
    finally:
        forward.kill()
        centre.stop()
