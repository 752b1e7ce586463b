"""Listen addresses, listener configuration and unit routing."""

from __future__ import annotations

import pytest

from vedette.errors import ConfigError
from vedette.server.syslog_listen import SyslogListenerConfig, UnitRouter, parse_listen_address

pytestmark = pytest.mark.embedded_only("no centre: the syslog listener's configuration in process")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5514", ("127.0.0.1", 5514)),
        ("[::1]:5514", ("::1", 5514)),
        ("[fe80::1%eth0]:514", ("fe80::1%eth0", 514)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    "text", ["5514", ":5514", "127.0.0.1", "::1:5514", "[::1]", "[nothost]:1", "h:65536", "h:-1"]
)
def test_parse_listen_address_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen_address(text)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="unit or at least one route"):
        SyslogListenerConfig(protocol="udp", host="127.0.0.1", port=0, unit=None)
    with pytest.raises(ConfigError, match="udp, tcp or tls"):
        SyslogListenerConfig(protocol="sctp", host="h", port=0, unit="u")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="port"):
        SyslogListenerConfig(protocol="udp", host="h", port=70000, unit="u")
    with pytest.raises(ConfigError, match="bad network"):
        UnitRouter("u", (("10.0.0.0/33", "x"),))


def test_router_first_match_wins_then_default() -> None:
    router = UnitRouter(
        "centre",
        (("10.1.0.0/16", "plant"), ("10.0.0.0/8", "corp"), ("2001:db8::/32", "v6")),
    )
    assert router.unit_for("10.1.2.3") == "plant"
    assert router.unit_for("10.9.2.3") == "corp"
    assert router.unit_for("::ffff:10.1.2.3") == "plant"  # IPv4 peer on a dual-stack socket
    assert router.unit_for("2001:db8::5") == "v6"
    assert router.unit_for("fe80::1%eth0") == "centre"
    assert router.unit_for("192.0.2.1") == "centre"
    assert UnitRouter(None, (("10.0.0.0/8", "corp"),)).unit_for("192.0.2.1") is None
