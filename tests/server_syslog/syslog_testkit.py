"""An in-memory SyslogSink and small async helpers for the listener tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from vedette.server.syslog_listen import Backpressure


class MemorySink:
    """A real SyslogSink keeping lines in memory; ``refuse`` / ``raise_backpressure`` simulate a
    spool at its high-water mark (``accepting()`` False, or ``submit`` raising)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[bytes]] = {}
        self.batches: list[tuple[str, int]] = []
        self.refuse = False
        self.raise_backpressure = False
        self.refused_submits = 0

    def accepting(self) -> bool:
        return not self.refuse

    async def submit(self, unit: str, lines: list[bytes]) -> None:
        await asyncio.sleep(0)  # a real spool awaits its fsync
        if self.raise_backpressure:
            self.refused_submits += 1
            raise Backpressure("spool full")
        self.batches.append((unit, len(lines)))
        self.lines.setdefault(unit, []).extend(lines)

    def count(self) -> int:
        return sum(len(lines) for lines in self.lines.values())


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (a liveness bound, not a speed check): fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def wait_stable(value: Callable[[], int], quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Wait until ``value()`` stops changing for ``quiet`` s; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = value(), loop.time()
    while loop.time() - since < quiet:
        await asyncio.sleep(0.02)
        current = value()
        if current != last:
            last, since = current, loop.time()
        if loop.time() > deadline:
            raise AssertionError("value never settled")
    return last


def send_udp(port: int, datagrams: list[bytes], host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, (host, port))


async def send_tcp(port: int, chunks: list[bytes], pause: float = 0.0) -> None:
    """Send ``chunks`` over one connection (``pause`` s between them, so they arrive apart)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    writer.close()
    await writer.wait_closed()


def octet(message: bytes) -> bytes:
    """RFC 6587 octet-counted frame of ``message``."""
    return b"%d %s" % (len(message), message)
