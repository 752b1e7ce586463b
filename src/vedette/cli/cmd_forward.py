"""`vedette forward`: tail log files and folders and ship them to a centre exactly once."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from vedette.cli.registry import CommandRegistry
from vedette.errors import ConfigError

EXIT_TOKEN_REFUSED = 3
MAX_BATCH_SIZE = 50_000

DESCRIPTION = """\
Tail log files and folders (rotating text logs, JSON lines, EVTX files dropped into a folder)
and send them to a Vedette centre's POST /api/v1/events. Read positions and a buffer of
unacknowledged batches are kept in --state, so after a crash or `kill -9` the forwarder resumes
where it was and every line reaches the centre exactly once. Retries with back-off while the
centre is away or busy; exits 3 when the centre refuses the token.

examples:
  vedette forward /var/log/auth.log /var/log/syslog --to https://centre.example:8400 \\
      --token-file /etc/vedette/token --state /var/lib/vedette-forward
  vedette forward /srv/evtx-drop --to http://127.0.0.1:8400 --state ./fwd --once
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files and folders")
    parser.add_argument("--to", required=True, metavar="URL", help="the centre's base URL")
    parser.add_argument(
        "--token", metavar="TOKEN", help="an ingest token (default: $VEDETTE_TOKEN)"
    )
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="read the token from FILE")
    parser.add_argument(
        "--state", required=True, type=Path, metavar="DIR", help="positions and buffer folder"
    )
    parser.add_argument("--unit", metavar="NAME", help="send for this unit below the token's")
    parser.add_argument(
        "--once", action="store_true", help="send what is there now, exit 0 once all is stored"
    )
    parser.add_argument("--poll", type=float, default=0.5, metavar="S", help="file check period")
    parser.add_argument(
        "--progress-every", type=float, default=10.0, metavar="S", help="progress line period"
    )
    parser.add_argument(
        "--max-backoff", type=float, default=30.0, metavar="S", help="longest wait between tries"
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, metavar="N", help="records per request (max)"
    )
    parser.add_argument(
        "--max-buffer-mb", type=int, default=256, metavar="MB", help="stop reading past this"
    )


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            message = f"cannot read --token-file {args.token_file}: {exc.strerror}"
            raise ConfigError(message) from None
    else:
        token = args.token or os.environ.get("VEDETTE_TOKEN", "")
    if not token:
        raise ConfigError("no token: give --token, --token-file or $VEDETTE_TOKEN")
    return str(token)


def _run(args: argparse.Namespace) -> int:
    # imported here: `vedette --help` must not pay for the sources and HTTP client
    from vedette.forward import ForwardConfig, Forwarder, TokenRefused

    if not args.to.startswith(("http://", "https://")):
        raise ConfigError(f"--to {args.to}: give the centre's http:// or https:// URL")
    for name in ("poll", "progress_every", "max_backoff", "batch_size", "max_buffer_mb"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be above 0")
    if args.batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size is at most {MAX_BATCH_SIZE:,} (the centre's limit)")
    config = ForwardConfig(
        paths=tuple(args.paths),
        url=args.to,
        token=_token(args),
        state=args.state,
        unit=args.unit,
        once=args.once,
        poll=args.poll,
        progress_every=args.progress_every,
        max_backoff=args.max_backoff,
        max_buffer_bytes=args.max_buffer_mb << 20,
        batch_records=args.batch_size,
    )
    for path in config.paths:
        if not path.exists():
            print(f"vedette forward: {path} does not exist (yet); watching for it", file=sys.stderr)
    forwarder = Forwarder(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        forwarder.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        forwarder.run()
    except TokenRefused as exc:
        print(
            f"vedette forward: error: {exc}; nothing more is sent. What was read stays in"
            f" {config.state} and goes when the forwarder runs again with a valid --to and token.",
            file=sys.stderr,
        )
        code = EXIT_TOKEN_REFUSED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            forwarder.report()
        finally:
            forwarder.close()
    return code


def register(registry: CommandRegistry) -> None:
    """Register `vedette forward`."""
    registry.add(
        ("forward",),
        "tail log files and folders and send them to a centre, exactly once",
        _configure,
        _run,
        description=DESCRIPTION,
    )
