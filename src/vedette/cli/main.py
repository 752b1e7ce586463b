"""Entry point of the ``vedette`` command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

import vedette.cli as cli_package
from vedette import __version__
from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError, InputError, VedetteError

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_NO_INPUT = 2

DESCRIPTION = """\
Vedette: the sentry ahead of the camp.

Hunt through a folder of logs with Sigma rules, threat-intelligence indicators and ATT&CK
(`vedette scan`), or run the monitoring centre for many units (`vedette serve`).
"""

EPILOG = """\
examples:
  vedette scan ./collected-logs                     timeline of detections, bundled rules
  vedette scan C:/triage --rules ./sigma/rules      any Sigma rule folder
  vedette scan ./logs --format jsonl -o out.jsonl   machine-readable output
  vedette rules check ./my-rules                    which rules load, which do not and why
"""


class VedetteArgumentParser(argparse.ArgumentParser):
    """argparse with Vedette's exit codes: a usage error exits 1, because 2 means "no input"."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and the error, then exit 1."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_registry() -> CommandRegistry:
    """Import every ``cmd_*`` module of the CLI package and let it register its commands."""
    registry = CommandRegistry()
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
            module.register(registry)
    return registry


def build_parser(registry: CommandRegistry) -> argparse.ArgumentParser:
    """The argparse tree for every registered command and group."""
    parser = VedetteArgumentParser(
        prog="vedette",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vedette {__version__}")
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    subparsers: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def ensure(path: tuple[str, ...]) -> argparse.ArgumentParser:
        if path in parsers:
            return parsers[path]
        parent = ensure(path[:-1])
        if path[:-1] not in subparsers:
            subparsers[path[:-1]] = parent.add_subparsers(
                dest=f"command_{len(path)}", metavar="COMMAND"
            )
        help_text = registry.group_help.get(path, "")
        command = registry.commands.get(path)
        if command is not None:
            help_text = command.help
        sub = subparsers[path[:-1]].add_parser(
            path[-1],
            help=help_text,
            description=(command.description if command else None) or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parsers[path] = sub
        if path in registry.group_options:
            registry.group_options[path](sub)
        return sub

    for path in sorted(registry.commands):
        command = registry.commands[path]
        sub = ensure(path)
        command.configure(sub)
        sub.set_defaults(_run=command.run, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code. No traceback reaches the user."""
    registry = build_registry()
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(run(args))
    except ConfigError as exc:
        print(f"vedette: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as exc:
        print(f"vedette: error: {exc}", file=sys.stderr)
        return EXIT_NO_INPUT
    except VedetteError as exc:
        print(f"vedette: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vedette: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # last line of defence: a bug must not become a traceback
        print(
            f"vedette: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in Vedette; please report it with the command you ran.",
            file=sys.stderr,
        )
        return 70
