"""Cautions about indicators that will match far more than their publisher meant.

A feed that lists ``0.0.0.0/1``, a private address or a bare ``com`` would flood a scan with
false alarms. Such indicators still load (the feed's word is kept) but each is noted in the
feed's report, so ``vedette intel check`` shows them before a scan does. A network that covers
every address (``0.0.0.0/0``, ``::/0``) is refused unless the feed is loaded with
``force_broad``: it can only be a mistake or an attack on the scan.
"""

from __future__ import annotations

import ipaddress
import re

from vedette.intel.model import FeedReport, Indicator

MAX_NOTES_PER_REASON = 20
# A cheap first test (most indicators are public); ipaddress then decides.
_PRIVATE_HINT = re.compile(
    r"^(?:10\.|127\.|0\.|169\.254\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\."
    r"|100\.(?:6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|f[cde]|::)",
    re.IGNORECASE,
)


class Vetter:
    """Notes broad or internal indicators in a feed report (at most a few per reason)."""

    def __init__(self, report: FeedReport, *, force_broad: bool = False) -> None:
        self.report = report
        self.counts: dict[str, int] = {}
        self.force_broad = force_broad

    def _flag(self, reason: str, detail: str) -> None:
        seen = self.counts.get(reason, 0) + 1
        self.counts[reason] = seen
        if seen <= MAX_NOTES_PER_REASON:
            self.report.note(reason, detail)

    def check(self, indicator: Indicator) -> bool:
        """Note ``indicator`` if it is broad enough to cause false alarms; False when it is
        refused (it matches every address)."""
        kind, value = indicator.type, indicator.value
        if kind == "ip":
            if "/" in value:
                prefix = int(value.rsplit("/", 1)[1])
                if prefix == 0 and not self.force_broad:
                    self.report.warn(
                        "matches-everything",
                        f"{value} matches every address: refused (set force_broad on the feed"
                        " to keep it)",
                    )
                    return False
                if prefix < (32 if ":" in value else 8):
                    self._flag("broad-network", f"{value} covers a large part of the Internet")
            if _PRIVATE_HINT.match(value):
                network = ipaddress.ip_network(value, strict=False)
                if not network.is_global:
                    self._flag("internal-address", f"{value} is private, loopback or reserved")
        elif kind == "domain" and "." not in value:
            self._flag("single-label-domain", f"{value!r} matches every name under it")
        return True

    def finish(self) -> None:
        """Say how many notes were left out."""
        for reason, seen in self.counts.items():
            if seen > MAX_NOTES_PER_REASON:
                self.report.note(reason, f"... and {seen - MAX_NOTES_PER_REASON} more")
