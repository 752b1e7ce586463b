"""The notifier role: the notification dispatcher, in as many processes as wanted.

``vedette serve --role notifier`` runs :class:`vedette.notify.dispatcher.Dispatcher` over the
shared outbox in PostgreSQL. Notifiers need no lease between them: each round claims its due
rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and moves their next attempt past a claim lease
in the same transaction (:func:`vedette.store.state.notifications.claim_due`), so a row is sent
by one notifier; a notifier that dies mid-send leaves its rows to be sent again by another when
their claim lease ends (at-least-once, with the same delivery id for the receiver to drop).

Each notifier renews a row in ``role_members`` with its counters, which the api's /metrics sums
(``vedette_notifications_total``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from vedette.notify.dispatcher import Dispatcher, DispatchStats
from vedette.server.config import ServeConfig
from vedette.server.partitions import worker_identity
from vedette.server.role_signals import refuse_reload_on_sighup
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.duties import leave, renew_member

log = logging.getLogger("vedette.notifier")

__all__ = ["dispatch_stats_json", "run_notifier"]


def dispatch_stats_json(stats: DispatchStats) -> dict[str, Any]:
    """The dispatcher's counters as JSON for ``role_members.stats``."""
    return {
        "outcomes": [[c, o, n] for (c, o), n in sorted(stats.outcomes.items())],
        "pending": dict(stats.pending),
        "errors": stats.errors,
    }


def _heartbeat(state: StateDB, owner: str, dispatcher: Dispatcher, ttl: float) -> None:
    try:
        with state.session() as session:
            renew_member(session, owner, "notifier", time.time(), ttl,
                         dispatch_stats_json(dispatcher.stats))  # fmt: skip
    except Exception as exc:
        log.warning("notifier membership not renewed: %s", exc)


def run_notifier(config: ServeConfig, *, lease_seconds: float = 10.0) -> int:
    """The notifier role in the foreground until SIGTERM or SIGINT; the exit status."""
    home = config.paths.create()
    state = open_state(config.state_url, backup_dir=home.backups)
    owner = worker_identity()
    dispatcher = Dispatcher(state)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    refuse_reload_on_sighup("notifier")
    dispatcher.start()
    print(f"vedette serve: notifier {owner} running", flush=True)
    while True:
        _heartbeat(state, owner, dispatcher, lease_seconds)
        if stop.wait(lease_seconds / 3):
            break
    dispatcher.stop()  # the send at hand is marked; untried claimed rows are handed back
    try:
        with state.session() as session:
            leave(session, owner)
    except Exception as exc:
        log.warning("could not leave the notifier membership: %s", exc)
    state.close()
    print("vedette serve: stopped", flush=True)
    return 0
