"""Log sources: read files of every supported format into batches of normalised events.

Public API::

    report = ReadReport()
    for path in iter_input_files(["/cases/host42"]):
        for batch in read_events(path, report=report):
            ...
    print(report.summary())

Each format is one module that registers a :class:`Reader` in :data:`READERS`; importing this
package imports them all.
"""

from __future__ import annotations

from vedette.sources import apache_error as _apache_error  # noqa: F401  (registers a reader)
from vedette.sources import auditd as _auditd  # noqa: F401
from vedette.sources import cef as _cef  # noqa: F401
from vedette.sources import csvfile as _csvfile  # noqa: F401
from vedette.sources import evtx as _evtx  # noqa: F401
from vedette.sources import jsonl as _jsonl  # noqa: F401
from vedette.sources import syslog as _syslog  # noqa: F401
from vedette.sources import w3c as _w3c  # noqa: F401
from vedette.sources import weblog as _weblog  # noqa: F401
from vedette.sources import winxml as _winxml  # noqa: F401
from vedette.sources import zeek as _zeek  # noqa: F401
from vedette.sources.api import (
    DEFAULT_BATCH_SIZE,
    ReadTask,
    plan_read_tasks,
    read_events,
    read_task,
)
from vedette.sources.inputs import iter_input_files
from vedette.sources.registry import READERS, Reader, ReadOptions, register, sniff_format
from vedette.sources.report import ReadReport

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "READERS",
    "ReadOptions",
    "ReadReport",
    "ReadTask",
    "Reader",
    "iter_input_files",
    "plan_read_tasks",
    "read_events",
    "read_task",
    "register",
    "sniff_format",
]
