"""Item scanners: deciding many detection items of a batch of events in one pass.

The engine asks a scanner which of the items it *covers* are true for each event, then evaluates
every other item in Python and the rule conditions as boolean checks over the true items. The
pure-Python :class:`~vedette.detect.index.PythonScanner` is the reference implementation; the
Hyperscan accelerator (``vedette.detect.hs_scanner``) implements the same protocol and must give
identical answers for the items it covers (the contract is in :mod:`vedette.detect.plan`).

Scanners are registered by name in :data:`SCANNERS`; a module listed in :data:`SCANNER_MODULES`
is imported on first use so that it can register itself (``SCANNERS["hyperscan"] = factory``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from vedette.detect.plan import RulePlan
from vedette.events import Event


class ItemScanner(Protocol):
    """Decides a fixed set of detection items for batches of events."""

    @property
    def covered(self) -> frozenset[int]:
        """Item ids this scanner decides; fixed once built. The engine never evaluates these."""
        ...

    def decide(self, events: Sequence[Event]) -> list[set[int]]:
        """For each event (same order), the covered item ids that are true for it.

        Items of rules that do not apply to an event's logsource may be included or left out;
        the engine ignores them. The returned sets belong to the caller (they may be mutated).
        """
        ...


ScannerFactory = Callable[[RulePlan, Path | None, str | None], ItemScanner]
"""Builds a scanner for a plan; the second argument is the cache directory (may be None), where
a scanner may keep compiled artefacts, and the third a fingerprint of what the plan was compiled
from (the engine's cache key; None when unknown), under which it may file artefacts derived from
the plan alone."""

SCANNERS: dict[str, ScannerFactory] = {}
"""Registered scanner factories by name (``"python"``, ``"hyperscan"``)."""

SCANNER_MODULES: dict[str, str] = {
    "python": "vedette.detect.index",
    "hyperscan": "vedette.detect.hs_scanner",
}
"""Module that registers each scanner name when imported."""

AUTO_ORDER: tuple[str, ...] = ("hyperscan", "python")
"""Preference order of ``scanner="auto"``: the first one that is available."""


def get_scanner_factory(name: str) -> ScannerFactory | None:
    """The factory registered under ``name``, importing its module on first use.

    Returns None when the module is not there (an optional accelerator that is not built or
    whose native library is missing); any other import error is a bug and propagates.
    """
    if name not in SCANNERS and name in SCANNER_MODULES:
        module = SCANNER_MODULES[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name not in (module, "hyperscan"):
                raise
            return None
    return SCANNERS.get(name)
