"""SIGHUP in the scale-out roles: said what to do instead, never the end of the process.

The embedded centre reloads its rules and feeds on SIGHUP (and ``POST /api/v1/rules/reload``).
The scale-out roles load them when they start and nothing carries a reload from an api to the
workers yet, so a reload is refused with this advice: without a handler, SIGHUP (an operator's
habitual ``systemctl reload``) ended the process, and a reload on the api alone would have
answered 200 while the workers went on detecting with the old rules.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

log = logging.getLogger("vedette.roles")

RELOAD_REFUSED = (
    "the scale-out roles load their rules and feeds when they start: restart the worker and "
    "api processes (one at a time) to load new ones"
)


def refuse_reload_on_sighup(role: str) -> None:
    """Make SIGHUP print :data:`RELOAD_REFUSED` in this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return

    def on_hup(signum: int, _frame: object) -> None:
        log.warning("SIGHUP: rules not reloaded: %s", RELOAD_REFUSED)
        print(f"vedette serve: {role}: SIGHUP: rules not reloaded: {RELOAD_REFUSED}",
              file=sys.stderr, flush=True)  # fmt: skip

    signal.signal(signal.SIGHUP, on_hup)
