"""How routes and configurations are written for each speaker (checked end to end in tests/e2e/test_bgp_bird.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from opendots.mitigate.base import PortRange
from opendots.mitigate.bgp import exabgp, gobgp
from opendots.mitigate.bgp.routes import FlowspecRoute, RtbhRoute
from opendots.mitigate.bgp.speaker import PeerConfig, SpeakerConfig, SpeakerError

net = ipaddress.ip_network
addr = ipaddress.ip_address

RTBH = RtbhRoute(net("203.0.113.7/32"), addr("192.0.2.1"), ("65535:666", "64496:9"))
FLOW_V4 = FlowspecRoute(
    net("203.0.113.7/32"),
    net("198.51.100.0/24"),
    protocols=(6, 17),
    destination_ports=(PortRange(80, 90), PortRange(443, 443)),
    source_ports=(PortRange(53, 53),),
)
FLOW_V6 = FlowspecRoute(net("2001:db8:5::/64"), protocols=(17,), rate_limit_bytes_per_second=12500)
CONFIG = SpeakerConfig(
    local_as=64496,
    router_id=ipaddress.IPv4Address("198.51.100.1"),
    peers=(
        PeerConfig(addr("198.51.100.2"), 64497, local_address=addr("198.51.100.1")),
        PeerConfig(addr("2001:db8:1::2"), 64497, local_address=addr("2001:db8:1::1"), multihop_ttl=4),
    ),
    listen_port=None,
)


def test_gobgp_arguments():
    assert gobgp.add_arguments(RTBH) == [
        "global", "rib", "-a", "ipv4", "add", "203.0.113.7/32", "nexthop", "192.0.2.1", "community", "65535:666,64496:9"
    ]  # fmt: skip
    assert gobgp.add_arguments(FLOW_V4) == [
        "global", "rib", "-a", "ipv4-flowspec", "add", "match", "destination", "203.0.113.7/32",
        "source", "198.51.100.0/24", "protocol", "==6", "==17", "destination-port", ">=80&<=90", "==443",
        "source-port", "==53", "then", "discard",
    ]  # fmt: skip
    assert gobgp.add_arguments(FLOW_V6)[-3:] == ["then", "rate-limit", "12500"]
    assert gobgp.delete_arguments(RTBH) == ["global", "rib", "-a", "ipv4", "del", "203.0.113.7/32"]
    assert gobgp.delete_arguments(FLOW_V6) == [
        "global", "rib", "-a", "ipv6-flowspec", "del", "match", "destination", "2001:db8:5::/64", "protocol", "==17"
    ]  # fmt: skip


def test_gobgp_config():
    text = gobgp.render_config(CONFIG)
    assert "port = -1" in text  # listen_port None: connect out only
    assert text.count("[[neighbors]]") == 2
    assert 'afi-safi-name = "ipv6-flowspec"' in text
    assert "multihop-ttl = 4" in text
    assert 'local-address = "2001:db8:1::1"' in text


def test_exabgp_commands():
    assert exabgp.announce_command(RTBH) == (
        "announce route 203.0.113.7/32 next-hop 192.0.2.1 community [ 65535:666 64496:9 ]"
    )
    assert exabgp.announce_command(FLOW_V4) == (
        "announce flow route { match { destination 203.0.113.7/32; source 198.51.100.0/24; protocol [ =6 =17 ];"
        " destination-port [ >=80&<=90 =443 ]; source-port [ =53 ]; } then { discard; } }"
    )
    # IPv6: prefixes carry an offset, and the protocol is the next header (RFC 8956).
    assert exabgp.announce_command(FLOW_V6) == (
        "announce flow route { match { destination 2001:db8:5::/64/0; next-header [ =17 ]; }"
        " then { rate-limit 12500; } }"
    )
    assert exabgp.withdraw_command(RTBH) == "withdraw route 203.0.113.7/32 next-hop 192.0.2.1"
    assert exabgp.withdraw_command(FLOW_V6).startswith("withdraw flow route { match { destination 2001:db8:5::/64/0;")


def test_exabgp_config_and_environment():
    text = exabgp.render_config(CONFIG, Path("/run/x/api.sock"), python="/usr/bin/python3")
    assert f"run /usr/bin/python3 {exabgp.RELAY} /run/x/api.sock;" in text
    assert "neighbor 2001:db8:1::2 {" in text and "ipv6 flow;" in text and "outgoing-ttl 4;" in text
    env = exabgp.environment(CONFIG)
    assert env["exabgp_tcp_bind"] == ""  # no listening socket when listen_port is None
    assert env["exabgp_api_ack"] == "true" and env["exabgp_daemon_drop"] == "false"
    listening = exabgp.environment(SpeakerConfig(64496, CONFIG.router_id, CONFIG.peers, listen_port=1179))
    assert listening["exabgp_tcp_bind"] == "198.51.100.1 2001:db8:1::1" and listening["exabgp_tcp_port"] == "1179"


def test_exabgp_needs_local_addresses():
    config = SpeakerConfig(64496, CONFIG.router_id, (PeerConfig(addr("198.51.100.2"), 64497),))
    with pytest.raises(SpeakerError, match="local address"):
        exabgp.render_config(config, Path("/tmp/s"))


def test_peer_and_speaker_config_validation():
    with pytest.raises(ValueError):
        PeerConfig(addr("198.51.100.2"), 0)
    with pytest.raises(ValueError):
        PeerConfig(addr("198.51.100.2"), 64497, local_address=addr("2001:db8::1"))
    with pytest.raises(ValueError):
        PeerConfig(addr("198.51.100.2"), 64497, families=("ipv4-multicast",))
    with pytest.raises(ValueError):
        SpeakerConfig(64496, CONFIG.router_id, ())
    assert PeerConfig(addr("2001:db8::2"), 1).address_families == ("ipv6-unicast", "ipv6-flowspec")
