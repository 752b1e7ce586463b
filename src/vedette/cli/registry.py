"""The command registry: commands and command groups, registered by their modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

Runner = Callable[[argparse.Namespace], int]
Configurer = Callable[[argparse.ArgumentParser], None]


@dataclass(slots=True)
class Command:
    """A leaf command: its path (``("rules", "check")``), help and functions."""

    path: tuple[str, ...]
    help: str
    configure: Configurer
    run: Runner
    description: str | None = None


@dataclass(slots=True)
class CommandRegistry:
    """All commands by path; registering one path twice is an error."""

    commands: dict[tuple[str, ...], Command] = field(default_factory=dict)
    group_help: dict[tuple[str, ...], str] = field(default_factory=dict)
    group_options: dict[tuple[str, ...], Configurer] = field(default_factory=dict)
    """Options of a group itself (``vedette admin --home DIR unit add``)."""

    def add(
        self,
        path: tuple[str, ...],
        help: str,
        configure: Configurer,
        run: Runner,
        description: str | None = None,
    ) -> None:
        """Register a command under ``path``."""
        if path in self.commands:
            raise ValueError(f"command {' '.join(path)!r} registered twice")
        self.commands[path] = Command(path, help, configure, run, description)

    def group(self, path: tuple[str, ...], help: str, configure: Configurer | None = None) -> None:
        """Describe a command group such as ``rules``; ``configure`` adds options to it."""
        self.group_help[path] = help
        if configure is not None:
            self.group_options[path] = configure
