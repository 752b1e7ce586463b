"""Syslog listeners over real loopback sockets: UDP, TCP (both framings), TLS, routes, oversize."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable

import pytest
from syslog_testkit import MemorySink, octet, send_tcp, send_udp, wait_until

from vedette.errors import ConfigError
from vedette.server.syslog_listen import (
    SyslogListener,
    SyslogListenerConfig,
    parse_listen_address,
)
from vedette.sources.syslog_parse import parse_syslog_line

pytestmark = pytest.mark.embedded_only("no centre: the syslog listener in process")

RFC5424 = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed"
RFC3164 = b"<13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!"
SSHD = b"<38>Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186"

Scenario = Callable[[SyslogListener, MemorySink], Awaitable[None]]


def run(config: SyslogListenerConfig, scenario: Scenario, sink: MemorySink | None = None) -> None:
    """Start a listener on a fresh loop, run ``scenario`` against it, stop it."""

    async def main() -> None:
        memory = sink or MemorySink()
        listener = SyslogListener(config, memory)
        await listener.start()
        try:
            await scenario(listener, memory)
        finally:
            await listener.stop()

    asyncio.run(main())


def tcp(**kwargs: object) -> SyslogListenerConfig:
    options: dict[str, object] = {"protocol": "tcp", "host": "127.0.0.1", "port": 0, "unit": "hq"}
    options.update(kwargs)
    return SyslogListenerConfig(**options)  # type: ignore[arg-type]


def test_udp_rfc3164_and_rfc5424_reach_the_sink() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        assert listener.port > 0
        send_udp(listener.port, [RFC3164 + b"\n", RFC5424, SSHD + b"\r\n", b"\n"])
        await wait_until(lambda: sink.count() == 3)
        assert sorted(sink.lines["hq"]) == sorted([RFC3164, RFC5424, SSHD])
        assert listener.stats.received == listener.stats.submitted == 3
        parsed = {line: parse_syslog_line(line) for line in sink.lines["hq"]}
        assert (
            parsed[RFC5424] is not None and parsed[RFC5424]["hostname"] == "mymachine.example.com"
        )
        assert parsed[SSHD] is not None and parsed[SSHD]["program"] == "sshd"
        assert parsed[RFC3164] is not None and parsed[RFC3164]["pid"] == "123"

    run(tcp(protocol="udp"), scenario)


def test_tcp_newline_framing() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tcp(listener.port, [RFC3164 + b"\n" + RFC5424 + b"\r\n", SSHD + b"\x00last"])
        await wait_until(lambda: sink.count() == 4)
        assert sink.lines["hq"] == [RFC3164, RFC5424, SSHD, b"last"]
        await wait_until(lambda: listener.stats.connections_open == 0)
        assert listener.stats.connections_total == 1
        assert listener.stats.bad_frames == 0

    run(tcp(), scenario)


def test_tcp_octet_counting_split_and_coalesced() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        frame = octet(RFC5424)
        split = [frame[:1], frame[1:3], frame[3:40], frame[40:]]  # count and body both cut
        await send_tcp(listener.port, split, pause=0.02)
        await send_tcp(listener.port, [octet(RFC3164) + octet(SSHD) + octet(b"<13>a\nb")])
        await wait_until(lambda: sink.count() == 4)
        assert sink.lines["hq"] == [RFC5424, RFC3164, SSHD, b"<13>a\\nb"]
        assert (listener.stats.bad_frames, listener.stats.received) == (0, 4)

    run(tcp(), scenario)


def test_tcp_mixed_framing_on_one_connection() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        stream = octet(RFC5424) + RFC3164 + b"\n" + octet(SSHD) + b"<14>plain\r\n"
        await send_tcp(listener.port, [stream[:30], stream[30:]], pause=0.02)
        await wait_until(lambda: sink.count() == 4)
        assert sink.lines["hq"] == [RFC5424, RFC3164, SSHD, b"<14>plain"]

    run(tcp(), scenario)


def test_tcp_bad_count_resyncs_and_connection_keeps_working() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tcp(listener.port, [b"007 junk\n", octet(RFC3164), RFC5424 + b"\n"])
        await wait_until(lambda: sink.count() == 2)
        assert sink.lines["hq"] == [RFC3164, RFC5424]
        assert listener.stats.bad_frames == 1

    run(tcp(), scenario)


def test_routes_by_source_network() -> None:
    async def udp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        send_udp(listener.port, [RFC3164])
        await wait_until(lambda: sink.count() == 1)
        assert list(sink.lines) == ["X"]

    routes = (("10.0.0.0/8", "Y"), ("127.0.0.0/8", "X"), ("127.0.0.1/32", "Z"))
    run(tcp(protocol="udp", unit="default", routes=routes), udp_scenario)

    async def tcp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tcp(listener.port, [RFC3164 + b"\n"])
        await wait_until(lambda: sink.count() == 1)
        assert sink.lines == {"X": [RFC3164]}

    run(tcp(unit=None, routes=(("127.0.0.0/8", "X"),)), tcp_scenario)


def test_unmapped_peers_are_dropped_and_counted() -> None:
    async def udp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        send_udp(listener.port, [RFC3164, RFC5424])
        await wait_until(lambda: listener.stats.dropped_unmapped == 2)
        assert listener.stats.received == 2
        assert sink.count() == 0

    run(tcp(protocol="udp", unit=None, routes=(("10.0.0.0/8", "Y"),)), udp_scenario)

    async def tcp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await reader.read() == b""  # the listener closes the connection
        writer.close()
        assert listener.stats.dropped_unmapped == 1
        assert (listener.stats.connections_total, listener.stats.connections_open) == (1, 0)
        assert sink.count() == 0

    run(tcp(unit=None, routes=(("10.0.0.0/8", "Y"),)), tcp_scenario)


def test_oversize_messages_truncated_and_counted() -> None:
    big = b"<13>" + b"z" * 400

    async def tcp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tcp(listener.port, [big + b"\n", octet(big), RFC3164 + b"\n"])
        await wait_until(lambda: sink.count() == 3)
        assert sink.lines["hq"] == [big[:100], big[:100], RFC3164]
        assert listener.stats.oversize == 2

    run(tcp(max_message=100), tcp_scenario)

    async def udp_scenario(listener: SyslogListener, sink: MemorySink) -> None:
        send_udp(listener.port, [big])
        await wait_until(lambda: sink.count() == 1)
        assert sink.lines["hq"] == [big[:100]]
        assert listener.stats.oversize == 1

    run(tcp(protocol="udp", max_message=100), udp_scenario)


def test_stop_submits_pending_lines() -> None:
    sink = MemorySink()

    async def scenario(listener: SyslogListener, memory: MemorySink) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(RFC3164 + b"\n<13>unterminated")
        await writer.drain()
        await wait_until(lambda: listener.stats.received == 1)
        # stop() (in run) closes the connection: the unterminated line is delivered too.

    run(tcp(), scenario, sink)
    assert sink.lines["hq"] == [RFC3164, b"<13>unterminated"]


def test_batches_are_at_most_500_lines_per_unit() -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        lines = [b"<13>line %d" % i for i in range(1234)]
        await send_tcp(listener.port, [b"\n".join(lines) + b"\n"])
        await wait_until(lambda: sink.count() == 1234)
        assert sink.lines["hq"] == lines
        assert max(size for _, size in sink.batches) <= 500
        assert listener.stats.submitted == 1234

    run(tcp(), scenario)


def test_port_in_use_is_a_config_error() -> None:
    async def main() -> None:
        first = SyslogListener(tcp(), MemorySink())
        await first.start()
        try:
            second = SyslogListener(tcp(port=first.port), MemorySink())
            with pytest.raises(ConfigError, match="cannot listen"):
                await second.start()
        finally:
            await first.stop()

    asyncio.run(main())


# TLS ------------------------------------------------------------------------------------------


def client_context(files: dict[str, str], with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=files["ca"])
    if with_cert:
        context.load_cert_chain(files["client"])
    return context


async def send_tls(port: int, context: ssl.SSLContext, data: bytes) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_tls_both_framings(tls_files: dict[str, str]) -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tls(listener.port, client_context(tls_files), octet(RFC5424) + SSHD + b"\n")
        await wait_until(lambda: sink.count() == 2)
        assert sink.lines["hq"] == [RFC5424, SSHD]
        assert listener.stats.tls_failures == 0
        await wait_until(lambda: listener.stats.connections_open == 0)

    config = tcp(protocol="tls", certfile=tls_files["cert"], keyfile=tls_files["key"])
    run(config, scenario)


def test_tls_plaintext_client_is_a_counted_failure(tls_files: dict[str, str]) -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tcp(listener.port, [RFC3164 + b"\n"])
        await wait_until(lambda: listener.stats.tls_failures == 1)
        await wait_until(lambda: listener.stats.connections_open == 0)
        assert sink.count() == 0

    config = tcp(protocol="tls", certfile=tls_files["cert"], keyfile=tls_files["key"])
    run(config, scenario)


def test_mutual_tls_requires_a_client_certificate(tls_files: dict[str, str]) -> None:
    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        await send_tls(listener.port, client_context(tls_files, with_cert=True), RFC3164 + b"\n")
        await wait_until(lambda: sink.count() == 1)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.port, ssl=client_context(tls_files), server_hostname="127.0.0.1"
        )
        # TLS 1.3: the client hears of the refusal only when it reads (an alert, or EOF).
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            writer.write(RFC5424 + b"\n")
            await writer.drain()
            assert await reader.read() == b""
        writer.close()
        await wait_until(lambda: listener.stats.tls_failures == 1)
        assert sink.lines["hq"] == [RFC3164]

    config = tcp(
        protocol="tls",
        certfile=tls_files["cert"],
        keyfile=tls_files["key"],
        client_ca=tls_files["ca"],
    )
    run(config, scenario)


def test_tls_config_needs_cert_and_key() -> None:
    with pytest.raises(ConfigError, match="certfile"):
        tcp(protocol="tls")
    with pytest.raises(ConfigError, match="cannot load"):
        SyslogListener(
            tcp(protocol="tls", certfile="/nonexistent.pem", keyfile="/nonexistent.key"),
            MemorySink(),
        )


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listen_address_and_route() -> None:
    host, port = parse_listen_address("[::1]:0")

    async def scenario(listener: SyslogListener, sink: MemorySink) -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.sendto(RFC3164, ("::1", listener.port))
        await wait_until(lambda: sink.count() == 1)
        assert sink.lines == {"v6": [RFC3164]}

    routes = (("127.0.0.0/8", "v4"), ("::1/128", "v6"))
    run(tcp(protocol="udp", host=host, port=port, unit=None, routes=routes), scenario)
