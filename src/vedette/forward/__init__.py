"""``vedette forward``: tail log files and folders and ship them to a centre, exactly once.

Modules, one concept each::

    tailer     which files are watched, their generations (rotation, truncation), new lines
    evtx       EVTX files as JSON records the centre's windows_flat layout reads
    batching   position ranges into gzip bodies and their Idempotency-Keys
    state      read positions and the on-disk buffer (SQLite, one transaction per chunk)
    sender     one POST /api/v1/events and what its answer means; back-off
    progress   the progress line
    runner     the loop tying them together (ForwardConfig, Forwarder)

It is a client of the centre: it imports ``vedette.sources`` but never the server or scan.
"""

from __future__ import annotations

from vedette.forward.runner import ForwardConfig, Forwarder, TokenRefused

__all__ = ["ForwardConfig", "Forwarder", "TokenRefused"]
