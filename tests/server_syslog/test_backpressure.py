"""Back-pressure: TCP stops reading and loses nothing; UDP drops are counted."""

from __future__ import annotations

import asyncio

import pytest
from syslog_testkit import MemorySink, send_udp, wait_stable, wait_until

from vedette.server.syslog_listen import SyslogListener, SyslogListenerConfig

pytestmark = pytest.mark.embedded_only("no centre: the syslog listener in process")

PADDING = b"p" * 1000  # 1 KB lines: 20 MB in all, far more than loopback socket buffers hold
TOTAL = 20_000


def lines(count: int) -> list[bytes]:
    return [b"<13>Feb  5 17:32:18 host app[1]: event %06d %s" % (i, PADDING) for i in range(count)]


async def flood(port: int, payload: list[bytes]) -> None:
    """A client that keeps sending; drain() blocks it when the server stops reading."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for start in range(0, len(payload), 100):
        writer.write(b"".join(line + b"\n" for line in payload[start : start + 100]))
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def tcp_refusal(raise_backpressure: bool) -> None:
    """The sink refuses (by accepting() or by raising Backpressure) while a client floods."""

    async def main() -> None:
        sink = MemorySink()
        sink.refuse = not raise_backpressure
        sink.raise_backpressure = raise_backpressure
        listener = SyslogListener(
            SyslogListenerConfig(protocol="tcp", host="127.0.0.1", port=0, unit="hq"), sink
        )
        await listener.start()
        payload = lines(TOTAL)
        client = asyncio.create_task(flood(listener.port, payload))
        try:
            await wait_until(lambda: listener.stats.received > 0)
            held = await wait_stable(lambda: listener.stats.received)
            # Reading stopped: the client is stuck in drain() and the listener holds a bounded
            # part of the stream (one read's worth), none of it submitted.
            assert not client.done()
            assert 0 < held < TOTAL
            assert sink.count() == 0
            if raise_backpressure:
                assert sink.refused_submits > 0
            sink.refuse = sink.raise_backpressure = False
            await wait_until(lambda: sink.count() == TOTAL, timeout=60)
            await client
        finally:
            await listener.stop()
        assert sink.lines["hq"] == payload  # everything, once, in order
        stats = listener.stats
        assert stats.received == stats.submitted == TOTAL
        assert stats.dropped_backpressure == stats.dropped_shutdown == 0

    asyncio.run(main())


def test_tcp_paused_while_not_accepting_nothing_lost() -> None:
    tcp_refusal(raise_backpressure=False)


def test_tcp_paused_while_submit_raises_backpressure_nothing_lost() -> None:
    tcp_refusal(raise_backpressure=True)


def test_udp_drops_counted_while_refusing() -> None:
    async def main() -> None:
        sink = MemorySink()
        listener = SyslogListener(
            SyslogListenerConfig(protocol="udp", host="127.0.0.1", port=0, unit="hq"), sink
        )
        await listener.start()
        try:
            sink.refuse = True
            send_udp(listener.port, lines(50))
            await wait_until(lambda: listener.stats.received == 50)
            assert listener.stats.dropped_backpressure == 50
            sink.refuse = False
            accepted = lines(55)[50:]
            send_udp(listener.port, accepted)
            await wait_until(lambda: sink.count() == 5)
            assert sorted(sink.lines["hq"]) == accepted
        finally:
            await listener.stop()
        stats = listener.stats
        assert (stats.received, stats.submitted, stats.dropped_backpressure) == (55, 5, 50)

    asyncio.run(main())


def test_udp_submit_refusal_blocks_then_recovers() -> None:
    """submit raising Backpressure: the held batch is retried; datagrams meanwhile are dropped."""

    async def main() -> None:
        sink = MemorySink()
        sink.raise_backpressure = True
        listener = SyslogListener(
            SyslogListenerConfig(protocol="udp", host="127.0.0.1", port=0, unit="hq"), sink
        )
        await listener.start()
        try:
            first = lines(1)
            send_udp(listener.port, first)
            await wait_until(lambda: sink.refused_submits > 0)
            send_udp(listener.port, lines(4)[1:])
            await wait_until(lambda: listener.stats.received == 4)
            assert listener.stats.dropped_backpressure == 3
            sink.raise_backpressure = False
            await wait_until(lambda: sink.count() == 1)
            assert sink.lines["hq"] == first
        finally:
            await listener.stop()

    asyncio.run(main())


class SlowSink(MemorySink):
    """Accepting, but each submit takes a while (a slow disk): reading must still be bounded."""

    async def submit(self, unit: str, lines: list[bytes]) -> None:
        await asyncio.sleep(0.01)
        await super().submit(unit, lines)


def test_slow_sink_bounds_what_the_listener_holds() -> None:
    async def main() -> None:
        sink = SlowSink()
        listener = SyslogListener(
            SyslogListenerConfig(protocol="tcp", host="127.0.0.1", port=0, unit="hq"),
            sink,
            max_pending_lines=600,
        )
        await listener.start()
        payload = lines(5000)
        client = asyncio.create_task(flood(listener.port, payload))
        held: list[int] = []
        try:
            while sink.count() < len(payload):
                held.append(listener.stats.received - listener.stats.submitted)
                await asyncio.sleep(0.005)
            await client
        finally:
            await listener.stop()
        # The bound, plus at most one socket read (256 KiB: about 250 of these 1 KB lines).
        assert max(held) <= 600 + 300
        assert sink.lines["hq"] == payload

    asyncio.run(main())


def test_stop_while_refusing_counts_what_it_could_not_submit() -> None:
    async def main() -> None:
        sink = MemorySink()
        sink.refuse = True
        listener = SyslogListener(
            SyslogListenerConfig(protocol="tcp", host="127.0.0.1", port=0, unit="hq"), sink
        )
        await listener.start()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"".join(line + b"\n" for line in lines(3)))
        await writer.drain()
        await wait_until(lambda: listener.stats.received == 3)
        await listener.stop(drain_timeout=0.2)
        writer.close()
        stats = listener.stats
        assert (stats.dropped_shutdown, stats.submitted, stats.connections_open) == (3, 0, 0)
        assert sink.count() == 0

    asyncio.run(main())
