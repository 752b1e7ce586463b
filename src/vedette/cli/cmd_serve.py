"""`vedette serve`: the monitoring centre in the foreground, every role in one process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError

if TYPE_CHECKING:
    from vedette.store.jetstream import JetStreamConfig

DESCRIPTION = """\
Run the monitoring centre: units send events over HTTP (POST /api/v1/events) or syslog, the
centre detects with the same rules, correlations and indicators as `vedette scan`, stores the
events for hunting (Parquet, by unit and day) and raises alerts. Everything lives under --home;
set up units and tokens first with `vedette admin --home DIR ...`.

Listens on 127.0.0.1 unless told otherwise. SIGTERM or SIGINT stops it cleanly; `kill -9`
loses nothing that was acknowledged.

examples:
  vedette serve --home /var/lib/vedette
  vedette serve --home ./centre --http 0.0.0.0:8400 --syslog-udp 0.0.0.0:514=branch-a
  vedette serve --home ./centre --rules ~/sigma/rules/windows --intel feeds/misp.json
"""

# The flags each scale-out role needs (docs/scale-out.md, "Roles").
ROLE_NEEDS = {
    "api": ("--nats", "--database", "--store"),
    "worker": ("--nats", "--database", "--store"),
    "scheduler": ("--database", "--store"),  # --nats: publishes its searches itself
    "notifier": ("--database",),
}


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, required=True, help="the centre's folder")
    parser.add_argument("--http", default="127.0.0.1:8400", metavar="HOST:PORT",
                        help="HTTP API address (default 127.0.0.1:8400)")  # fmt: skip
    parser.add_argument("--syslog-udp", action="append", default=[], metavar="HOST:PORT[=UNIT]",
                        help="syslog over UDP, events to UNIT (repeatable)")  # fmt: skip
    parser.add_argument("--syslog-tcp", action="append", default=[], metavar="HOST:PORT[=UNIT]",
                        help="syslog over TCP, octet-counted or newline framing")  # fmt: skip
    parser.add_argument("--syslog-tls", action="append", default=[], metavar="HOST:PORT[=UNIT]",
                        help="syslog over TLS (needs --tls-cert and --tls-key)")  # fmt: skip
    parser.add_argument("--syslog-route", action="append", default=[], metavar="NETWORK=UNIT",
                        help="map a source network to a unit on every syslog listener")  # fmt: skip
    parser.add_argument("--tls-cert", type=Path, help="certificate (PEM) for --syslog-tls")
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) for --syslog-tls")
    parser.add_argument("--tls-client-ca", type=Path, help="require client certificates")
    parser.add_argument("--rules", action="append", type=Path, default=[], metavar="PATH",
                        help="Sigma rule file or folder (repeatable; default: scan's)")  # fmt: skip
    parser.add_argument("--intel", action="append", type=Path, default=[], metavar="FILE",
                        help="indicator feed (repeatable)")  # fmt: skip
    parser.add_argument("--placeholders", type=Path, help="values for Sigma placeholders")
    parser.add_argument("--database", metavar="URL",
                        help="state database URL (default: SQLite in --home)")  # fmt: skip
    parser.add_argument("--high-water", type=int, default=2_000_000, metavar="EVENTS",
                        help="spool depth past which ingest answers 503")  # fmt: skip
    parser.add_argument("--unit-quota", type=float, default=50_000.0, metavar="EPS",
                        help="events/s a unit may send before 429 (0: no quota)")  # fmt: skip
    parser.add_argument("--retention-days", type=int, default=90, help="days of events kept")
    parser.add_argument("--compact-every", type=float, default=600.0, metavar="SECONDS",
                        help="merge the event store's small files this often (default 600; "
                        "0: never, e.g. when another process compacts)")  # fmt: skip
    parser.add_argument("--compact-target-mb", type=float, default=128.0, metavar="MIB",
                        help="size a merged event file grows to (default 128)")  # fmt: skip
    parser.add_argument("--silent-check", type=float, default=60.0, metavar="SECONDS",
                        help="how often units are checked for silence (default 60)")  # fmt: skip
    parser.add_argument("--session-idle", type=float, default=8 * 3600.0, metavar="SECONDS",
                        help="a user's session unused this long is over (default 8 h)")  # fmt: skip
    parser.add_argument("--session-lifetime", type=float, default=7 * 24 * 3600.0,
                        metavar="SECONDS", help="a user's session is over this long after "
                        "login, used or not (default 7 days)")  # fmt: skip
    parser.add_argument("--warning-policy", type=Path, metavar="FILE",
                        help="early-warning and incident grouping policy (YAML; default: "
                             "docs/coordination.md)")  # fmt: skip
    parser.add_argument("--worker-process", action=argparse.BooleanOptionalAction, default=True,
                        help="embedded mode: detect in a child process (default)")  # fmt: skip
    scale = parser.add_argument_group(
        "scale-out mode (docs/scale-out.md)",
        "--role api, worker, scheduler or notifier, with --database (PostgreSQL); api and "
        "worker with --nats and --store, scheduler with --store (and --nats)",
    )
    scale.add_argument("--role", choices=("all", *ROLE_NEEDS), default="all",
                       help="all: every role in this process (the embedded default)")  # fmt: skip
    scale.add_argument("--nats", metavar="URL", help="NATS server with JetStream")
    scale.add_argument("--store", type=Path, metavar="PATH",
                       help="event store folder shared by every worker and api")  # fmt: skip
    scale.add_argument("--partitions", type=int, default=8, metavar="N",
                       help="event partitions (the same on every process; default 8)")  # fmt: skip
    scale.add_argument("--lease-seconds", type=float, default=10.0, metavar="S",
                       help="worker, scheduler lease: a dead one's work moves on")  # fmt: skip
    scale.add_argument("--max-partitions", type=int, metavar="N",
                       help="a worker takes at most N partitions")  # fmt: skip
    scale.add_argument("--replicas", type=int, default=1, metavar="N",
                       help="copies of the event stream on a JetStream cluster (3 for a "
                       "3-node cluster; refused when the servers cannot place them)")  # fmt: skip
    scale.add_argument("--nats-creds", type=Path, metavar="FILE",
                       help="NATS credentials file (JWT and nkey seed); or a user and "
                       "password in $VEDETTE_NATS_USER and $VEDETTE_NATS_PASSWORD")  # fmt: skip
    scale.add_argument("--nats-tls-ca", type=Path, metavar="FILE",
                       help="CA (PEM) of the NATS servers' certificates (TLS on)")  # fmt: skip
    scale.add_argument("--nats-tls-cert", type=Path, metavar="FILE",
                       help="client certificate (PEM), for servers that verify")  # fmt: skip
    scale.add_argument("--nats-tls-key", type=Path, metavar="FILE",
                       help="the client certificate's private key (PEM)")  # fmt: skip
    scale.add_argument("--hunt-threads", type=int, default=1, metavar="N",
                       help="retro-hunt tasks run at once (0: none; default 1)")  # fmt: skip
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))  # fmt: skip


def _listeners(args: argparse.Namespace) -> list[object]:
    from vedette.server.syslog_listen import SyslogListenerConfig, parse_listen_address

    routes = []
    for item in args.syslog_route:
        network, sep, unit = item.partition("=")
        if not sep or not unit:
            raise ConfigError(f"--syslog-route {item!r}: write NETWORK=UNIT")
        routes.append((network, unit))
    configs: list[object] = []
    protocols: tuple[tuple[Literal["udp", "tcp", "tls"], list[str]], ...] = (
        ("udp", args.syslog_udp),
        ("tcp", args.syslog_tcp),
        ("tls", args.syslog_tls),
    )
    for protocol, values in protocols:
        for value in values:
            address, _, unit = value.partition("=")
            host, port = parse_listen_address(address)
            configs.append(
                SyslogListenerConfig(
                    protocol=protocol,
                    host=host,
                    port=port,
                    unit=unit or None,
                    routes=tuple(routes),
                    certfile=str(args.tls_cert) if args.tls_cert else None,
                    keyfile=str(args.tls_key) if args.tls_key else None,
                    client_ca=str(args.tls_client_ca) if args.tls_client_ca else None,
                )
            )
    return configs


def _run(args: argparse.Namespace) -> int:
    from vedette.server.centre import Centre
    from vedette.server.config import ServeConfig
    from vedette.server.syslog_listen import parse_listen_address

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    host, port = parse_listen_address(args.http)
    config = ServeConfig(
        home=args.home,
        http_host=host,
        http_port=port,
        database_url=args.database,
        syslog=_listeners(args),  # type: ignore[arg-type]
        rule_paths=list(args.rules),
        intel_paths=list(args.intel),
        placeholders=args.placeholders,
        high_water_events=args.high_water,
        unit_quota_eps=args.unit_quota,
        retention_days=args.retention_days,
        warning_policy=args.warning_policy,
        silent_check_seconds=args.silent_check,
        session_idle_seconds=args.session_idle,
        session_lifetime_seconds=args.session_lifetime,
        worker_process=args.worker_process,
        compact_seconds=args.compact_every,
        compact_target_bytes=int(args.compact_target_mb * 1024 * 1024),
    )
    if args.role != "all" or args.nats:
        _check_scale_out(args)
    if args.role == "scheduler":
        from vedette.server.scheduler import run_scheduler

        nats = _nats_config(args) if args.nats else None
        return run_scheduler(config, nats, args.store, lease_seconds=args.lease_seconds)
    if args.role == "notifier":
        from vedette.server.notifier import run_notifier

        return run_notifier(config, lease_seconds=args.lease_seconds)
    from vedette.store.natsauth import redact_url

    if args.role == "worker":
        from vedette.server.roles import run_worker

        print(f"vedette serve: worker loading rules, NATS {redact_url(args.nats)} ...",
              file=sys.stderr)  # fmt: skip
        return run_worker(
            config,
            _nats_config(args),
            args.store,
            lease_seconds=args.lease_seconds,
            max_partitions=args.max_partitions,
            hunt_threads=args.hunt_threads,
        )
    print(f"vedette serve: loading rules and opening {args.home} ...", file=sys.stderr)
    if args.role == "api":
        from vedette.server.roles import open_api

        nats = _nats_config(args)
        centre: Centre = open_api(config, nats, args.store)
        print(f"vedette serve: api on NATS {redact_url(nats.url)}, stream {nats.stream} keeps "
              f"{nats.replicas} replica(s)", file=sys.stderr)  # fmt: skip
    else:
        centre = Centre.open(config)
    facts = centre.rules.facts
    print(
        f"vedette serve: {facts.rules_loaded:,} rules loaded, {len(facts.rule_errors):,} not "
        f"loaded (GET /api/v1/rules lists why), {facts.indicators:,} indicators; "
        f"HTTP on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    # Imported here, not above: the worker, scheduler and notifier roles serve no HTTP and
    # start about 0.45 CPU-s sooner without FastAPI's and uvicorn's imports.
    import uvicorn

    from vedette.server.app import create_app

    _Server = _server_class()
    app = create_app(centre)
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=args.log_level,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
    )
    server.run()
    print("vedette serve: stopped", file=sys.stderr)
    return 0


def _check_scale_out(args: argparse.Namespace) -> None:
    """The scale-out roles need NATS, PostgreSQL and a shared store; say what is missing."""
    if args.role == "all":
        raise ConfigError(
            "--nats runs the scale-out mode: start --role api, worker, scheduler and notifier"
        )
    missing = [flag for flag in ROLE_NEEDS[args.role] if not getattr(args, flag[2:])]
    if missing:
        raise ConfigError(f"--role {args.role} needs {', '.join(missing)}")
    if not str(args.database).startswith("postgresql"):
        raise ConfigError("the scale-out roles share their state: --database must be PostgreSQL")
    if args.partitions < 1:
        raise ConfigError("--partitions must be at least 1")
    if not 1 <= args.replicas <= 5:
        raise ConfigError("--replicas must be 1 to 5 (JetStream's limit)")


def _nats_config(args: argparse.Namespace) -> JetStreamConfig:
    """The stream and connection settings of the scale-out flags and environment."""
    from vedette.store.jetstream import JetStreamConfig
    from vedette.store.natsauth import NatsAuth

    auth = NatsAuth.from_env(
        creds=args.nats_creds,
        tls_ca=args.nats_tls_ca,
        tls_cert=args.nats_tls_cert,
        tls_key=args.nats_tls_key,
    )
    return JetStreamConfig(
        url=args.nats, partitions=args.partitions, replicas=args.replicas, auth=auth
    )


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a stop asked for by SIGTERM or SIGINT exits with status 0
        (uvicorn re-raises the signal after its graceful shutdown)."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server


def register(registry: CommandRegistry) -> None:
    """Register `vedette serve`."""
    registry.add(("serve",), "run the monitoring centre (HTTP and syslog ingest, alerts)",
                 _configure, _run, DESCRIPTION)  # fmt: skip
