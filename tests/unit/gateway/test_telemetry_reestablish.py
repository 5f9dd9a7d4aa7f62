"""Telemetry setups a gateway holds upstream, sent again when the upstream server may have lost them, as the
mitigations are (RFC 9244 §7: setups are not tied to a session; RFC 9132 §4.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opendots.gateway.relay import DOTS_CBOR, Batch, Inbound, Outbound, RelayCore, Reply
from opendots.model import encode_signal, encode_telemetry
from opendots.signal.client.core.telemetry_bodies import config_entry, report_entry
from tests.helpers.gateway import relay_core

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
SETUP = "ietf-dots-telemetry:telemetry-setup"
TM = "ietf-dots-telemetry:telemetry"
OWN = "gatewaycuid0000000000a"
ALICE, BOB = "alicecuid0000000000000", "bobcuid000000000000000"
NOW = 1_000_000.0


def setup_body(interval: str = "hour") -> bytes:
    return encode_telemetry({SETUP: {"telemetry": [config_entry(measurement_interval=interval)]}})


def inbound(client: str, cuid: str, method: str, *path: str, **kwargs: Any) -> Inbound:
    return Inbound(client=client, peer_cuid=cuid, method=method, path=(path[0], f"cuid={cuid}", *path[1:]), **kwargs)


def relayed(step: Reply | Outbound | Batch) -> Outbound:
    assert isinstance(step, Outbound), step
    return step


def put_setup(relay: RelayCore, client: str, cuid: str, tsid: int, body: bytes) -> Outbound:
    sent = relayed(relay.request(inbound(client, cuid, "PUT", "tm-setup", f"tsid={tsid}", payload=body), NOW))
    assert relay.answered(sent, "2.01", b"", None, None, NOW).code == "2.01"
    return sent


def test_the_setups_held_upstream_are_put_again_in_their_order_when_the_session_is_back(tmp_path: Path) -> None:
    relay = relay_core(tmp_path)
    bob = put_setup(relay, "bob", BOB, 1, setup_body("day"))
    alice = put_setup(relay, "alice", ALICE, 7, setup_body())
    report = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=1", payload=report_body()), NOW))
    relay.answered(report, "2.04", b"", None, None, NOW)
    relay.upstream_changed(False)
    relay.upstream_changed(True)
    again = relay.reestablish(NOW + 5)
    # Reports are not re-sent (an attack's telemetry at a moment); setups are, under their upstream tsids, oldest first.
    assert [(s.method, s.path, s.payload, s.reestablish) for s in again] == [
        ("PUT", bob.path, setup_body("day"), True),
        ("PUT", alice.path, setup_body(), True),
    ]
    assert relay.reestablish(NOW + 6) == []  # the ones on their way are not queued twice
    for sent in again:
        assert relay.answered(sent, "2.04", b"", None, None, NOW + 6).code == "2.04"
    assert relay.counters["telemetry-reestablished"] == 2
    # Answered: the next loss sends them again; so does a restarted gateway, from its database.
    assert [s.path for s in relay.reestablish(NOW + 7)] == [bob.path, alice.path]
    assert [s.payload for s in relay_core(tmp_path).reestablish(NOW + 8)] == [setup_body("day"), setup_body()]


def report_body() -> bytes:
    entry = report_entry(("203.0.113.0/24",), total_attack_traffic=["1000:packet-ps"])
    return encode_telemetry({TM: {"pre-or-ongoing-mitigation": [entry]}})


def test_a_mitigation_found_lost_upstream_brings_the_setups_back_with_it(tmp_path: Path) -> None:
    """The upstream server restarted without its state on a session the gateway kept: the relayed observation of a
    mitigation finds it gone (4.04), and the setups go again with it."""
    relay = relay_core(tmp_path)
    setup = put_setup(relay, "alice", ALICE, 2, setup_body())
    body = encode_signal({SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/24"], "lifetime": 3600}]}})
    mitigation = relayed(relay.request(inbound("alice", ALICE, "PUT", "mitigate", "mid=5", payload=body), NOW))
    ack = encode_signal({SCOPE: {"scope": [{"mid": mitigation.upstream_mid, "lifetime": 3600}]}})
    relay.answered(mitigation, "2.01", ack, DOTS_CBOR, None, NOW)
    get = relayed(relay.request(inbound("alice", ALICE, "GET", "mitigate", "mid=5"), NOW + 10))
    relay.answered(get, "4.04", b"", None, None, NOW + 10)
    assert [(s.resource, s.path) for s in relay.resend] == [("mitigate", mitigation.path), ("tm-setup", setup.path)]


def test_a_setup_deleted_while_it_was_sent_again_is_deleted_upstream_too(tmp_path: Path) -> None:
    relay = relay_core(tmp_path)
    put_setup(relay, "alice", ALICE, 2, setup_body())
    [again] = relay.reestablish(NOW + 1)
    delete = relayed(relay.request(inbound("alice", ALICE, "DELETE", "tm-setup", "tsid=2"), NOW + 1))
    assert relay.answered(delete, "2.02", b"", None, None, NOW + 1).code == "2.02"
    relay.answered(again, "2.01", b"", None, None, NOW + 2)  # the re-sent PUT re-created it upstream after the DELETE
    [withdrawal] = relay.resend
    assert (withdrawal.method, withdrawal.path) == ("DELETE", again.path)
    relay.answered(withdrawal, "2.02", b"", None, None, NOW + 2)
    assert relay.reestablish(NOW + 3) == []


def test_a_setup_refused_when_sent_again_is_gone_and_one_unanswered_is_sent_at_the_next_chance(tmp_path: Path) -> None:
    """4.00 'tsid must increase': a newer overlapping setup replaced it upstream (RFC 9244 §7.1.2), which the
    gateway learns only now."""
    relay = relay_core(tmp_path)
    put_setup(relay, "alice", ALICE, 2, setup_body())
    kept = put_setup(relay, "bob", BOB, 3, setup_body("day"))
    replaced, again = relay.reestablish(NOW + 1)
    relay.answered(replaced, "4.00", b"", None, None, NOW + 1)
    assert relay.counters["telemetry-not-reestablished"] == 1
    assert relay.failed(again, "no answer").code == "5.03"
    assert [s.path for s in relay.reestablish(NOW + 2)] == [kept.path]
    # Alice's client is told it is gone when it asks.
    gone = relay.request(inbound("alice", ALICE, "GET", "tm-setup", "tsid=2"), NOW + 2)
    assert isinstance(gone, Reply) and gone.code == "4.04"


def test_a_server_domain_gateway_keeps_the_setups_it_relayed_and_sends_them_again_with_their_cdid(
    tmp_path: Path,
) -> None:
    relay = relay_core(tmp_path, "server-domain")
    setup = put_setup(relay, "alice", ALICE, 4, setup_body())
    assert setup.path == ("tm-setup", f"cdid={ALICE}", f"cuid={ALICE}", "tsid=4")
    [again] = relay_core(tmp_path, "server-domain").reestablish(NOW + 1)
    assert (again.path, again.payload) == (setup.path, setup_body())
    # A DELETE of all of the cuid's setups (§7.4) leaves nothing to send again.
    delete = relayed(relay.request(inbound("alice", ALICE, "DELETE", "tm-setup"), NOW + 2))
    relay.answered(delete, "2.02", b"", None, None, NOW + 2)
    assert relay.reestablish(NOW + 3) == []
