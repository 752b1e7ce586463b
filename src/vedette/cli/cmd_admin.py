"""`vedette admin`: units, users and tokens of a centre, from the machine it runs on.

Works on the centre's state store directly (run it beside a running `vedette serve` or with the
server stopped); every change is written to the audit trail as ``admin-cli``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError

ACTOR = "admin-cli"
ROLES = ("admin", "analyst", "viewer", "ingest")

DESCRIPTION = """\
Manage a centre's units, users and tokens. The first unit added (without --parent) is the
centre, the root of the tree; a role on a unit covers the units below it.

examples:
  vedette admin --home ./centre unit add hq
  vedette admin --home ./centre unit add branch-a --parent hq --silent-after 900
  vedette admin --home ./centre token add --unit branch-a --role ingest
  vedette admin --home ./centre user add alice --unit hq --role analyst
"""


def _configure_admin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, help="the centre's folder")
    parser.add_argument("--database", metavar="URL", help="state database URL")


def _common(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the subcommand; SUPPRESS keeps the group's value when absent here.
    parser.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="the centre's folder")
    parser.add_argument("--database", metavar="URL", default=argparse.SUPPRESS,
                        help="state database URL")  # fmt: skip


def _configure_unit_add(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("name")
    parser.add_argument("--parent", help="the unit above (none for the centre itself)")
    parser.add_argument("--silent-after", type=int, metavar="SECONDS",
                        help="alert when the unit sends nothing for this long")  # fmt: skip


def _configure_unit_list(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def _configure_token_add(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--unit", required=True)
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--name", default="", help="a label (e.g. the sensor's host name)")


def _configure_token_revoke(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("token_id", type=int)


def _configure_user_add(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("name")
    parser.add_argument("--unit", required=True)
    parser.add_argument("--role", required=True, choices=("admin", "analyst", "viewer"))
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (else: prompt, or "
                        "$VEDETTE_PASSWORD)")  # fmt: skip


@contextmanager
def _state(args: argparse.Namespace) -> Iterator[Any]:
    from vedette.paths import ServerHome
    from vedette.store.state.db import open_state

    if getattr(args, "home", None) is None:
        raise ConfigError("say which centre: vedette admin --home DIR ...")
    home = ServerHome(args.home).create()
    state = open_state(args.database or home.state_url, backup_dir=home.backups)
    try:
        with state.session() as session:
            yield session
    finally:
        state.close()


def _translate(exc: Exception) -> ConfigError:
    return ConfigError(str(exc))


def _unit_add(args: argparse.Namespace) -> int:
    from vedette.store.state.scope import Invalid, NotFound
    from vedette.store.state.units import add_unit

    try:
        with _state(args) as session:
            unit = add_unit(
                session,
                name=args.name,
                parent=args.parent,
                actor=ACTOR,
                silent_after_seconds=args.silent_after,
            )
            print(f"unit {unit.name} added" + (f" below {args.parent}" if args.parent else ""))
    except (Invalid, NotFound) as exc:
        raise _translate(exc) from None
    return 0


def _unit_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from vedette.store.state.models import Unit

    with _state(args) as session:
        units = list(session.scalars(select(Unit).order_by(Unit.id)))
        names = {u.id: u.name for u in units}
        for unit in units:
            parent = names.get(unit.parent_id) if unit.parent_id else "-"
            print(f"{unit.name}\tparent={parent}")
    return 0


def _token_add(args: argparse.Namespace) -> int:
    from vedette.store.state.accounts import add_token
    from vedette.store.state.scope import Invalid, NotFound

    try:
        with _state(args) as session:
            row, secret = add_token(
                session, unit=args.unit, role=args.role, name=args.name, actor=ACTOR
            )
            print(f"token {row.id} for unit {args.unit}, role {row.role} (shown once):")
    except (Invalid, NotFound) as exc:
        raise _translate(exc) from None
    print(secret)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from vedette.store.state.audit import append_audit
    from vedette.store.state.models import Token, utcnow

    with _state(args) as session:
        token = session.scalar(select(Token).where(Token.id == args.token_id))
        if token is None:
            raise ConfigError(f"no token {args.token_id}")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            append_audit(
                session,
                actor=ACTOR,
                action="token.revoke",
                object_type="token",
                object_id=token.id,
                unit_id=token.unit_id,
                before={"revoked_at": None},
                after={"revoked_at": token.revoked_at},
            )
        print(f"token {token.id} revoked (a running server forgets it within seconds)")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from vedette.store.state.accounts import add_user
    from vedette.store.state.scope import Invalid, NotFound

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("VEDETTE_PASSWORD") or getpass.getpass(
            f"password for {args.name}: "
        )
    if len(password) < 12:
        raise ConfigError("a password needs at least 12 characters")
    try:
        with _state(args) as session:
            user = add_user(
                session,
                name=args.name,
                unit=args.unit,
                role=args.role,
                password=password,
                actor=ACTOR,
            )
            print(f"user {user.name} added to unit {args.unit} as {user.role}")
    except (Invalid, NotFound) as exc:
        raise _translate(exc) from None
    return 0


def register(registry: CommandRegistry) -> None:
    """Register `vedette admin unit|token|user ...`."""
    registry.group(("admin",), "manage a centre's units, users and tokens", _configure_admin)
    registry.group(("admin", "unit"), "units of the organisation")
    registry.group(("admin", "token"), "API tokens (ingest tokens for sensors)")
    registry.group(("admin", "user"), "people who log in")
    registry.add(("admin", "unit", "add"), "add a unit", _configure_unit_add, _unit_add,
                 DESCRIPTION)  # fmt: skip
    registry.add(("admin", "unit", "list"), "list units", _configure_unit_list, _unit_list)
    registry.add(("admin", "token", "add"), "add a token; prints it alone on the last line",
                 _configure_token_add, _token_add)  # fmt: skip
    registry.add(("admin", "token", "revoke"), "revoke a token by id",
                 _configure_token_revoke, _token_revoke)  # fmt: skip
    registry.add(("admin", "user", "add"), "add a user", _configure_user_add, _user_add)
