"""Syslog listeners of the monitoring centre: UDP, TCP and TCP with TLS, on the caller's loop.

A listener frames messages (:mod:`vedette.server.syslog_framing`), maps the sending peer to a
unit (the first matching route network, else the listener's default unit), and hands lines to a
:class:`SyslogSink` in batches per unit: up to 500 lines or 50 ms, whichever comes first.

Back-pressure instead of loss:

- TCP/TLS: while the sink is not :meth:`~SyslogSink.accepting`, or ``submit`` raises
  :class:`Backpressure` (or fails otherwise), every connection of the listener stops reading
  (``transport.pause_reading()``); the sink is polled every 100 ms and the pending batch retried;
  reading resumes once it is submitted. Nothing received over TCP is lost while running.
- UDP: datagrams arriving while the sink refuses are dropped and counted in
  ``dropped_backpressure`` (a datagram cannot be held back).

Each line is one syslog message, without its trailer; embedded CR/LF are escaped as ``\\r`` /
``\\n``. Over-long messages are truncated to ``max_message`` bytes and counted in ``oversize``.
A TCP peer that maps to no unit is disconnected at once (one ``dropped_unmapped`` per connection);
a UDP datagram from one counts one ``dropped_unmapped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vedette.errors import ConfigError
from vedette.server.syslog_framing import FrameDecoder, datagram_message

log = logging.getLogger(__name__)

BATCH_LINES = 500
BATCH_DELAY = 0.05
POLL_INTERVAL = 0.1
MAX_PENDING_LINES = 10_000
TLS_HANDSHAKE_TIMEOUT = 10.0
_ROUTE_CACHE_SIZE = 4096

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Backpressure(Exception):
    """Raised by :meth:`SyslogSink.submit` when it cannot take the batch now; retry later."""


class SyslogSink(Protocol):
    """Where listeners hand lines: the spool in the server, an in-memory list in tests."""

    def accepting(self) -> bool:
        """False at the spool's high-water mark: listeners hold back (TCP) or drop (UDP)."""
        ...

    async def submit(self, unit: str, lines: list[bytes]) -> None:
        """Store ``lines`` for ``unit``; durable when it returns. May raise Backpressure."""
        ...


@dataclass(slots=True)
class ListenerStats:
    """Counters of one listener (monotonic, for Prometheus), except ``connections_open``.

    ``received`` counts every framed message; each ends ``submitted``, ``dropped_*`` or is still
    pending. ``bad_frames`` counts framing errors (no message), ``oversize`` truncated messages,
    ``submit_errors`` submits that raised something other than Backpressure (retried).
    """

    received: int = 0
    submitted: int = 0
    dropped_backpressure: int = 0
    dropped_unmapped: int = 0
    dropped_shutdown: int = 0
    oversize: int = 0
    bad_frames: int = 0
    submit_errors: int = 0
    connections_open: int = 0
    connections_total: int = 0
    tls_failures: int = 0


@dataclass(frozen=True, slots=True)
class SyslogListenerConfig:
    """One listener: ``routes`` are ``(network, unit)`` pairs, the first match wins."""

    protocol: Literal["udp", "tcp", "tls"]
    host: str
    port: int
    unit: str | None
    routes: tuple[tuple[str, str], ...] = ()
    certfile: str | None = None
    keyfile: str | None = None
    client_ca: str | None = None
    max_message: int = 65536

    def __post_init__(self) -> None:
        if self.protocol not in ("udp", "tcp", "tls"):
            raise ConfigError(f"syslog protocol must be udp, tcp or tls, not {self.protocol!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"syslog port out of range: {self.port}")
        if self.unit is None and not self.routes:
            raise ConfigError("a syslog listener needs a unit or at least one route")
        if self.protocol == "tls" and not (self.certfile and self.keyfile):
            raise ConfigError("a TLS syslog listener needs certfile and keyfile")
        if self.max_message < 1:
            raise ConfigError("max_message must be positive")


def parse_listen_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5514"`` -> ``("127.0.0.1", 5514)``; IPv6 in brackets: ``"[::1]:5514"``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"listen address must be HOST:PORT or [IPv6]:PORT, not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ConfigError(f"not an IPv6 address in {text!r}") from None
    elif ":" in host or "[" in host or "]" in host:
        raise ConfigError(f"an IPv6 listen address needs brackets: {text!r}")
    value = int(port)
    if value > 65535:
        raise ConfigError(f"port out of range in {text!r}")
    return host, value


def build_ssl_context(certfile: str, keyfile: str, client_ca: str | None = None) -> ssl.SSLContext:
    """Server TLS context (TLS 1.2+); with ``client_ca``, clients must present a certificate
    signed by it (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate or key: {exc}") from exc
    return context


class UnitRouter:
    """Peer address -> unit: the first route whose network holds it, else the default."""

    def __init__(self, default: str | None, routes: tuple[tuple[str, str], ...]) -> None:
        self.default = default
        self.routes: list[tuple[IPNetwork, str]] = []
        for network, unit in routes:
            try:
                self.routes.append((ipaddress.ip_network(network, strict=False), unit))
            except ValueError:
                raise ConfigError(f"bad network in syslog route: {network!r}") from None
        self._cache: dict[str, str | None] = {}

    def unit_for(self, peer: str) -> str | None:
        """Unit of a peer address, or None when it matches no route and there is no default."""
        try:
            return self._cache[peer]
        except KeyError:
            pass
        unit = self._resolve(peer)
        if len(self._cache) >= _ROUTE_CACHE_SIZE:
            self._cache.clear()  # many distinct UDP sources: keep memory bounded
        self._cache[peer] = unit
        return unit

    def _resolve(self, peer: str) -> str | None:
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address
            address = ipaddress.ip_address(peer.partition("%")[0])
        except ValueError:
            return self.default
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # dual-stack socket: route IPv4 peers as IPv4
        for network, unit in self.routes:
            if address.version == network.version and address in network:
                return unit
        return self.default


class _Batcher:
    """Per-unit batches and the one task that submits them, retrying while the sink refuses."""

    def __init__(self, listener: SyslogListener) -> None:
        self._listener = listener
        self._sink = listener.sink
        self._stats = listener.stats
        self._pending: dict[str, tuple[float, list[bytes]]] = {}
        self.count = 0  # lines pending in total
        self.blocked = False  # the sink refused: TCP paused, UDP dropping
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, unit: str, lines: list[bytes]) -> None:
        entry = self._pending.get(unit)
        if entry is None:
            self._pending[unit] = (asyncio.get_running_loop().time(), lines)
            self._wake.set()
        else:
            entry[1].extend(lines)
        self.count += len(lines)
        if len(self._pending[unit][1]) >= self._listener.batch_lines:
            self._wake.set()

    def full(self) -> bool:
        return self.count >= self._listener.max_pending_lines

    async def close(self, timeout: float) -> None:
        """Submit what is pending (for at most ``timeout`` s), then stop; the rest is counted."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._stats.dropped_shutdown += self.count
        self._pending.clear()
        self.count = 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        limit, delay = self._listener.batch_lines, self._listener.batch_delay
        while True:
            if not self._pending:
                if self._closing:
                    return
                if self.blocked:
                    # Paused by accepting() with nothing pending: poll until the sink accepts.
                    await asyncio.sleep(self._listener.poll_interval)
                    if self._sink.accepting():
                        self._set_blocked(False)
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            due = [
                unit
                for unit, (since, lines) in self._pending.items()
                if self._closing or len(lines) >= limit or now - since >= delay
            ]
            if not due:
                wait = min(since for since, _ in self._pending.values()) + delay - now
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            for unit in due:
                since, lines = self._pending.pop(unit)
                batch, rest = lines[:limit], lines[limit:]
                if rest:  # put the remainder back as due now, ahead of newer units
                    self._pending[unit] = (since, rest)
                await self._submit(unit, batch)

    async def _submit(self, unit: str, batch: list[bytes]) -> None:
        failing = False
        while True:
            if self._sink.accepting():
                try:
                    await self._sink.submit(unit, batch)
                except Backpressure:
                    pass
                except Exception:
                    self._stats.submit_errors += 1
                    if not failing:  # once per episode: the sink is retried every poll
                        log.exception("syslog sink failed; holding %d lines", len(batch))
                    failing = True
                else:
                    self._stats.submitted += len(batch)
                    self.count -= len(batch)
                    if self.blocked and self._sink.accepting() and not self.full():
                        self._set_blocked(False)
                    return
            self._set_blocked(True)
            await asyncio.sleep(self._listener.poll_interval)

    def _set_blocked(self, blocked: bool) -> None:
        if blocked != self.blocked:
            self.blocked = blocked
            self._listener._set_paused(blocked)


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        listener = self._listener
        stats = listener.stats
        message = datagram_message(data, listener.config.max_message, stats)
        if message is None:
            return
        stats.received += 1
        unit = listener.router.unit_for(addr[0])
        batcher = listener._batcher
        if unit is None:
            stats.dropped_unmapped += 1
        elif batcher.blocked or batcher.full() or not listener.sink.accepting():
            stats.dropped_backpressure += 1
        else:
            batcher.add(unit, [message])

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog UDP socket error: %s", exc)


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection."""

    def __init__(self, listener: SyslogListener) -> None:
        self._listener = listener
        self.transport: asyncio.Transport | None = None
        self._unit = ""
        self._decoder = FrameDecoder(listener.config.max_message, listener.stats)
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        stats = listener.stats
        assert isinstance(transport, asyncio.Transport)
        if self._open:  # start_tls does not call it again; guard anyway
            return
        stats.connections_total += 1
        peer = transport.get_extra_info("peername")
        unit = listener.router.unit_for(peer[0]) if peer else listener.router.default
        if unit is None:
            stats.dropped_unmapped += 1
            transport.abort()
            return
        self._unit = unit
        self._open = True
        stats.connections_open += 1
        listener._connections.add(self)
        if listener.ssl_context is not None:
            # Read nothing until start_tls owns the socket (it resumes reading itself).
            transport.pause_reading()
            task = asyncio.get_running_loop().create_task(self._handshake(transport))
            listener._handshakes.add(task)
            task.add_done_callback(listener._handshakes.discard)
        else:
            self.transport = transport
            if listener._paused:
                transport.pause_reading()

    async def _handshake(self, raw: asyncio.Transport) -> None:
        listener = self._listener
        assert listener.ssl_context is not None
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw,
                self,
                listener.ssl_context,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        except asyncio.CancelledError:  # stop() during the handshake
            raw.abort()
            self._closed()
            raise
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            listener.stats.tls_failures += 1
            log.info("syslog TLS handshake failed: %s", exc)
            raw.abort()
            self._closed()  # a failed handshake never reaches connection_lost
            return
        if tls is None or not self._open:
            self._closed()
            return
        assert isinstance(tls, asyncio.Transport)
        self.transport = tls
        if listener._paused:
            tls.pause_reading()

    def data_received(self, data: bytes) -> None:
        messages = self._decoder.feed(data)
        if messages:
            self._deliver(messages)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        messages = self._decoder.finish()
        if messages:
            self._deliver(messages)
        self._closed()

    def _deliver(self, messages: list[bytes]) -> None:
        listener = self._listener
        listener.stats.received += len(messages)
        # Everything read is kept: the batcher may go past its bound by what one read holds.
        listener._batcher.add(self._unit, messages)
        if listener._batcher.full() or not listener.sink.accepting():
            listener._batcher._set_blocked(True)

    def _closed(self) -> None:
        if self._open:
            self._open = False
            self._listener.stats.connections_open -= 1
            self._listener._connections.discard(self)


class SyslogListener:
    """One syslog listener on the running loop: ``await start()``, ``await stop()``.

    ``port`` is the bound port once started (useful with port 0); ``stats`` its counters.
    """

    def __init__(
        self,
        config: SyslogListenerConfig,
        sink: SyslogSink,
        *,
        batch_lines: int = BATCH_LINES,
        batch_delay: float = BATCH_DELAY,
        poll_interval: float = POLL_INTERVAL,
        max_pending_lines: int = MAX_PENDING_LINES,
    ) -> None:
        self.config = config
        self.sink = sink
        self.batch_lines = batch_lines
        self.batch_delay = batch_delay
        self.poll_interval = poll_interval
        self.max_pending_lines = max_pending_lines
        self.stats = ListenerStats()
        self.router = UnitRouter(config.unit, config.routes)
        self.ssl_context: ssl.SSLContext | None = None
        if config.protocol == "tls":
            assert config.certfile and config.keyfile  # checked by the config
            self.ssl_context = build_ssl_context(config.certfile, config.keyfile, config.client_ca)
        self.port = config.port
        self._batcher = _Batcher(self)
        self._connections: set[_Connection] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._paused = False
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Bind and serve on the running loop; raises ConfigError when the address is unusable."""
        loop = asyncio.get_running_loop()
        host = self.config.host or None
        try:
            if self.config.protocol == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagram(self), local_addr=(host or "0.0.0.0", self.config.port)
                )
                self._udp = transport
                sockname = transport.get_extra_info("sockname")
            else:
                self._server = await loop.create_server(
                    lambda: _Connection(self), host, self.config.port
                )
                sockname = self._server.sockets[0].getsockname()
        except OSError as exc:
            where = f"{self.config.host}:{self.config.port}"
            raise ConfigError(
                f"cannot listen for syslog/{self.config.protocol} on {where}: {exc}"
            ) from exc
        self.port = int(sockname[1])
        self._batcher.start()

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop listening, close connections, submit what is pending (for at most
        ``drain_timeout`` s; what remains is counted in ``dropped_shutdown``)."""
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._handshakes):
            task.cancel()
        for connection in list(self._connections):
            if connection.transport is not None:
                # abort, not close: a TLS close waits for the peer's close_notify. Everything
                # read is already with the batcher.
                connection.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        for attempt in range(100):  # connection_lost delivers the last unterminated lines
            if not self._connections:
                break
            await asyncio.sleep(0.01 if attempt > 10 else 0)
        await self._batcher.close(drain_timeout)

    def _set_paused(self, paused: bool) -> None:
        """Stop or resume reading on every TCP connection (UDP drops instead)."""
        self._paused = paused
        for connection in self._connections:
            transport = connection.transport
            if transport is None or transport.is_closing():
                continue
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()
