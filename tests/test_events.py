"""SourceRef behaves as the frozen dataclass it is, whatever its constructor does inside."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from vedette.events import SourceRef


def test_source_ref_fields_defaults_and_keywords() -> None:
    ref = SourceRef("a.evtx", "evtx", 7)
    assert (ref.path, ref.format, ref.record_id, ref.line, ref.offset) == (
        "a.evtx",
        "evtx",
        7,
        None,
        None,
    )
    assert SourceRef(path="z.log", format="zeek", line=3, offset=40) == SourceRef(
        "z.log", "zeek", None, 3, 40
    )
    assert [f.name for f in dataclasses.fields(SourceRef)] == [
        "path",
        "format",
        "record_id",
        "line",
        "offset",
    ]
    assert (
        repr(ref) == "SourceRef(path='a.evtx', format='evtx', record_id=7, line=None, offset=None)"
    )
    with pytest.raises(TypeError):
        SourceRef("a.evtx")  # type: ignore[call-arg]


def test_source_ref_is_frozen_hashable_and_picklable() -> None:
    ref = SourceRef("a.evtx", "evtx", 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.record_id = 8  # type: ignore[misc]
    assert hash(ref) == hash(SourceRef("a.evtx", "evtx", record_id=7))
    assert ref != SourceRef("a.evtx", "evtx", 8)
    assert len({ref, SourceRef("a.evtx", "evtx", 7)}) == 1
    assert pickle.loads(pickle.dumps(ref)) == ref == copy.deepcopy(ref)
    assert dataclasses.replace(ref, line=4) == SourceRef("a.evtx", "evtx", 7, 4)
    assert not hasattr(ref, "__dict__")
