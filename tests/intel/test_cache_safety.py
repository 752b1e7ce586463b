"""The intel index cache: a pickle planted where others can write is never loaded."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

from vedette.intel.index import IndicatorIndex


class Planted:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_planted_index_is_not_run(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    store = tmp_path / "cache"
    IndicatorIndex.from_feeds([feed], cache_dir=store)
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    (entry,) = store.glob("intel-*.pickle")
    assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0
    marker = tmp_path / "marker"
    entry.write_bytes(pickle.dumps(Planted(marker)))
    os.chmod(store, 0o777)
    index = IndicatorIndex.from_feeds([feed], cache_dir=store)
    assert not marker.exists()
    assert len(index) == 1


def test_entry_writable_by_others_is_not_run(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    store = tmp_path / "cache"
    IndicatorIndex.from_feeds([feed], cache_dir=store)
    (entry,) = store.glob("intel-*.pickle")
    marker = tmp_path / "marker"
    entry.write_bytes(pickle.dumps(Planted(marker)))
    os.chmod(entry, 0o666)
    assert len(IndicatorIndex.from_feeds([feed], cache_dir=store)) == 1
    assert not marker.exists()
