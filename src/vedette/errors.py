"""Errors and warnings, as data.

Exception tree::

    VedetteError                 root of every error Vedette raises on purpose
    ├── ConfigError              bad usage or configuration (CLI exit code 1)
    ├── RuleError                a rule that cannot be loaded (file, line, reason)
    ├── InputError               no input could be read at all (CLI exit code 2)
    └── FeedError                an indicator feed or ATT&CK bundle that cannot be read

Problems that must not stop a run are not raised: a bad log record becomes a
:class:`ReadWarning`, a rule that will not load becomes a :class:`RuleLoadError` entry in the
load report, and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass


class VedetteError(Exception):
    """Root of every error Vedette raises on purpose; the CLI prints it without a traceback."""


class ConfigError(VedetteError):
    """Bad usage or configuration."""


class InputError(VedetteError):
    """No input could be read."""


class FeedError(VedetteError):
    """An indicator feed or knowledge base that cannot be read."""


class RuleError(VedetteError):
    """A rule that cannot be loaded."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


@dataclass(slots=True, frozen=True, kw_only=True)
class RuleLoadError:
    """One rule that was not loaded, and why (an entry of the load report)."""

    path: str
    reason: str
    line: int | None = None
    rule_id: str | None = None
    title: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, str | int | None]:
        """As JSON: the scan summary and the centre's rule status show it this way."""
        return {
            "path": self.path,
            "line": self.line,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "title": self.title,
        }


@dataclass(slots=True, frozen=True, kw_only=True)
class ReadWarning:
    """A record or part of a file that could not be read; reading went on past it.

    ``reason`` is a short stable category (``"json-parse"``, ``"evtx-chunk"``, ``"encoding"``,
    ``"not-a-log"``, ...) used to count skips by reason; ``detail`` says more for a human.
    """

    path: str
    reason: str
    detail: str = ""
    offset: int | None = None
    line: int | None = None
    records: int = 1

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        elif self.offset is not None:
            where += f"@{self.offset}"
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")
