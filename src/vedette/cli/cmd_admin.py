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


def _configure_user_set(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("name")
    parser.add_argument("--role", choices=("admin", "analyst", "viewer"))
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--disable", action="store_true",
                        help="refuse the user's logins and end the user's sessions")  # fmt: skip
    switch.add_argument("--enable", action="store_true", help="allow the user's logins again")
    parser.add_argument("--password-stdin", action="store_true",
                        help="set a new password read from standard input (ends the user's "
                        "sessions)")  # fmt: skip


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


def _user_set(args: argparse.Namespace) -> int:
    from vedette.store.state.accounts import update_user
    from vedette.store.state.scope import Invalid, NotFound

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 12:
            raise ConfigError("a password needs at least 12 characters")
    disabled = True if args.disable else False if args.enable else None
    if args.role is None and disabled is None and password is None:
        raise ConfigError("nothing to change: --role, --disable, --enable or --password-stdin")
    try:
        with _state(args) as session:
            user, ended = update_user(
                session, args.name, role=args.role, disabled=disabled, password=password,
                actor=ACTOR,
            )  # fmt: skip
            state = "disabled" if user.disabled else "enabled"
            print(f"user {user.name}: role {user.role}, {state}; {ended} sessions ended "
                  "(a running server applies the change within seconds)")  # fmt: skip
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
    registry.add(("admin", "user", "set"), "change a user's role, disable, enable, new password",
                 _configure_user_set, _user_set)  # fmt: skip
    _register_channels(registry)  # notification channels: the block below
    registry.add(("admin", "compact"), "merge the event store's small files (safe while serving)",
                 _configure_compact, _compact, COMPACT_DESCRIPTION)  # fmt: skip


# -- notification channels (vedette.notify) ---------------------------------------------------

CHANNEL_DESCRIPTION = """\
Add a notification channel to a unit: it receives the alerts (and incidents, warnings,
bulletins) of that unit and of every unit below, at or above --min-level.

examples:
  vedette admin --home ./centre channel add webhook soc-hook --unit hq --url https://soc/hook
  vedette admin --home ./centre channel add email soc-mail --unit hq --host smtp.example \\
      --from vedette@example --to soc@example --username vedette  # $VEDETTE_SMTP_PASSWORD
  vedette admin --home ./centre channel add syslog siem --unit hq --host 10.0.0.5 --protocol tcp
A webhook's HMAC secret is made and printed alone on the last line unless --secret-stdin.
"""


def _configure_channel_add(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("kind", choices=("webhook", "email", "syslog"))
    parser.add_argument("name")
    parser.add_argument("--unit", required=True)
    parser.add_argument("--min-level", default="high",
                        choices=("informational", "low", "medium", "high", "critical"))  # fmt: skip
    parser.add_argument("--kinds", default="alert,incident,warning,bulletin",
                        help="comma-separated: alert, incident, warning, bulletin")  # fmt: skip
    parser.add_argument("--url", help="webhook: the receiver's http(s) URL")
    parser.add_argument("--host", help="email: SMTP relay; syslog: the SIEM")
    parser.add_argument("--port", type=int)
    parser.add_argument("--from", dest="sender", help="email: sender address")
    parser.add_argument("--to", help="email: comma-separated recipients")
    parser.add_argument("--username", help="email: SMTP login (password: $VEDETTE_SMTP_PASSWORD "
                        "or --secret-stdin)")  # fmt: skip
    parser.add_argument(
        "--no-starttls", action="store_true", help="email: clear text (a trusted local relay only)"
    )
    parser.add_argument("--protocol", choices=("udp", "tcp"), help="syslog transport (udp)")
    parser.add_argument("--facility", type=int, help="syslog facility 0-23 (16 = local0)")
    parser.add_argument("--ca-file", help="CA bundle to check the receiver's certificate")
    parser.add_argument("--timeout", type=float, help="seconds per try (10)")
    parser.add_argument("--retry-base", type=float, help="first retry delay in seconds (5)")
    parser.add_argument("--retry-cap", type=float, help="longest retry delay in seconds (900)")
    parser.add_argument(
        "--secret-stdin", action="store_true", help="read the webhook secret or SMTP password"
    )
    parser.add_argument("--disabled", action="store_true", help="add it switched off")


def _configure_channel_list(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def _configure_channel_delete(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("channel_id", type=int)


def _channel_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    pairs = {
        "url": args.url,
        "host": args.host,
        "port": args.port,
        "from": args.sender,
        "protocol": args.protocol,
        "facility": args.facility,
        "username": args.username,
        "ca_file": args.ca_file,
        "timeout": args.timeout,
        "retry_base": args.retry_base,
        "retry_cap": args.retry_cap,
    }
    config.update({key: value for key, value in pairs.items() if value is not None})
    if args.to:
        config["to"] = [r.strip() for r in args.to.split(",") if r.strip()]
    if args.kind == "email":
        config["starttls"] = not args.no_starttls
    return config


def _channel_add(args: argparse.Namespace) -> int:
    import secrets

    from vedette.store.state.notifications import add_channel
    from vedette.store.state.scope import Invalid, NotFound

    made = False
    if args.secret_stdin:
        secret: str | None = sys.stdin.readline().rstrip("\n") or None
    elif args.kind == "email":
        secret = os.environ.get("VEDETTE_SMTP_PASSWORD") or None
    elif args.kind == "webhook":
        secret, made = secrets.token_urlsafe(32), True
    else:
        secret = None
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    try:
        with _state(args) as session:
            channel = add_channel(
                session,
                None,
                unit=args.unit,
                kind=args.kind,
                name=args.name,
                config=_channel_config(args),
                secret=secret,
                min_level=args.min_level,
                kinds=kinds,
                enabled=not args.disabled,
                actor=ACTOR,
            )
            print(f"channel {channel.id} {channel.name} ({channel.kind}) added to unit {args.unit}")
    except (Invalid, NotFound) as exc:
        raise _translate(exc) from None
    if made:
        print("webhook secret (shown once):")
        print(secret)
    return 0


def _channel_list(args: argparse.Namespace) -> int:
    from vedette.store.state.notifications import list_channels

    with _state(args) as session:
        for c in list_channels(session, None):
            state = "enabled" if c.enabled else "disabled"
            print(f"{c.id}\t{c.name}\t{c.kind}\tunit={c.unit}\tmin_level={c.min_level}\t"
                  f"kinds={','.join(c.kinds)}\t{state}\tpending={c.pending}\t"
                  f"failing={c.failing}\tsent={c.sent}")  # fmt: skip
    return 0


def _channel_delete(args: argparse.Namespace) -> int:
    from vedette.store.state.notifications import delete_channel
    from vedette.store.state.scope import NotFound

    try:
        with _state(args) as session:
            dropped = delete_channel(session, None, args.channel_id, actor=ACTOR)
    except NotFound as exc:
        raise _translate(exc) from None
    print(f"channel {args.channel_id} deleted ({dropped} unsent notifications dropped)")
    return 0


def _register_channels(registry: CommandRegistry) -> None:
    registry.group(("admin", "channel"), "notification channels (webhook, email, syslog)")
    registry.add(("admin", "channel", "add"), "add a notification channel",
                 _configure_channel_add, _channel_add, CHANNEL_DESCRIPTION)  # fmt: skip
    registry.add(("admin", "channel", "list"), "list notification channels",
                 _configure_channel_list, _channel_list)  # fmt: skip
    registry.add(("admin", "channel", "delete"), "delete a channel and its unsent notifications",
                 _configure_channel_delete, _channel_delete)  # fmt: skip


# -- event store compaction (vedette.store.compact) -------------------------------------------

COMPACT_DESCRIPTION = """\
Merge the event store's small Parquet files (one per unit, day and flush) into files of about
--target-mb each. Only files the workers have committed are merged; hunts and retro-hunts
running meanwhile see every event exactly once. Safe beside a running centre and after a crash
at any point (the next run finishes the job). Merged sources are deleted by the first run
--grace seconds after their merge, so a hunt that listed them can still read them.

examples:
  vedette admin --home ./centre compact
  vedette admin --home /var/lib/vedette --database postgresql://vedette@pg/vedette \\
      compact --store /srv/vedette/events --target-mb 256
"""


def _configure_compact(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--store", type=Path, metavar="PATH",
                        help="the event store (scale-out: --store of the roles; default: the "
                        "home's events/)")  # fmt: skip
    parser.add_argument("--target-mb", type=float, default=128.0, metavar="MIB",
                        help="size a merged file grows to (default 128)")  # fmt: skip
    parser.add_argument("--target-rows", type=int, metavar="N",
                        help="and rows a merged file grows to (default: no limit)")  # fmt: skip
    parser.add_argument("--grace", type=float, default=300.0, metavar="SECONDS",
                        help="keep merged sources this long for hunts (default 300)")  # fmt: skip


def _compact(args: argparse.Namespace) -> int:
    from vedette.paths import ServerHome
    from vedette.server.compaction import compact_store, report_lines
    from vedette.store.compact import CompactPolicy
    from vedette.store.state.db import open_state

    if getattr(args, "home", None) is None:
        raise ConfigError("say which centre: vedette admin --home DIR compact ...")
    if args.target_mb <= 0 or args.grace < 0 or (args.target_rows or 1) < 1:
        raise ConfigError("--target-mb and --target-rows must be positive, --grace not negative")
    home = ServerHome(args.home).create()
    store = args.store or home.events
    if not Path(store).is_dir():
        raise ConfigError(f"{store} is not an event store folder")
    state = open_state(args.database or home.state_url, backup_dir=home.backups)
    try:
        policy = CompactPolicy(
            target_bytes=int(args.target_mb * 1024 * 1024),
            target_rows=args.target_rows,
            grace_seconds=args.grace,
        )
        report = compact_store(Path(store), state, policy)
    finally:
        state.close()
    for line in report_lines(report):
        print(line)
    return 0
