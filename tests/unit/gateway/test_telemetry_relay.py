"""RFC 9244 telemetry through the relay core: tsid/tmid mapping (client-domain), 'cdid' (server-domain), telemetry
attributes in mitigation requests and status (RFC 9244 §5.2, §7, §8, §9; RFC 9132 §4.4.1)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from opendots.config import ClientAuthorization
from opendots.gateway.relay import DOTS_CBOR, Batch, Inbound, Outbound, RelayCore, Reply
from opendots.model import decode_signal, decode_telemetry, encode_signal, encode_telemetry
from opendots.signal.client.core.telemetry_bodies import config_entry, report_entry
from tests.helpers.gateway import relay_core

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
SETUP = "ietf-dots-telemetry:telemetry-setup"
TM = "ietf-dots-telemetry:telemetry"
OWN = "gatewaycuid0000000000a"
ALICE, BOB = "alicecuid0000000000000", "bobcuid000000000000000"
NOW = 1_000_000.0


def setup_body() -> bytes:
    return encode_telemetry({SETUP: {"telemetry": [config_entry(measurement_interval="hour")]}})


def report_body(*mids: int) -> bytes:
    prefixes = () if mids else ("203.0.113.0/24",)
    entry = report_entry(prefixes, mids=mids, total_attack_traffic=["1000:packet-ps"])
    return encode_telemetry({TM: {"pre-or-ongoing-mitigation": [entry]}})


def inbound(client: str, cuid: str, method: str, *path: str, **kwargs: Any) -> Inbound:
    return Inbound(client=client, peer_cuid=cuid, method=method, path=(path[0], f"cuid={cuid}", *path[1:]), **kwargs)


def relayed(step: Reply | Outbound | Batch) -> Outbound:
    assert isinstance(step, Outbound), step
    return step


def answer(relay: RelayCore, sent: Outbound, code: str, body: dict[str, Any] | None = None) -> Reply:
    encode = encode_signal if body is not None and SCOPE in body else encode_telemetry
    payload = encode(body) if body is not None else b""
    return relay.answered(sent, code, payload, DOTS_CBOR if body else None, None, NOW)


def mitigation(relay: RelayCore, client: str, cuid: str, mid: int) -> int:
    """A mitigation of CLIENT accepted upstream: its upstream 'mid'."""
    body = encode_signal({SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/24"], "lifetime": 3600}]}})
    sent = relayed(relay.request(inbound(client, cuid, "PUT", "mitigate", f"mid={mid}", payload=body), NOW))
    assert sent.upstream_mid is not None
    answer(relay, sent, "2.01", {SCOPE: {"scope": [{"mid": sent.upstream_mid, "lifetime": 3600}]}})
    return sent.upstream_mid


def test_a_client_domain_gateway_gives_each_clients_tsid_an_upstream_tsid_of_its_own_rfc9244_s7_1_2(
    tmp_path: Path,
) -> None:
    """RFC 9132 §4.4.1 applied to RFC 9244 §7: under the gateway's cuid, two clients' tsid=1 must not collide."""
    relay = relay_core(tmp_path)
    alice = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm-setup", "tsid=1", payload=setup_body()), NOW))
    bob = relayed(relay.request(inbound("bob", BOB, "PUT", "tm-setup", "tsid=1", payload=setup_body()), NOW))
    assert alice.path == ("tm-setup", f"cuid={OWN}", f"tsid={alice.upstream_mid}")
    assert bob.path == ("tm-setup", f"cuid={OWN}", f"tsid={bob.upstream_mid}")
    assert alice.upstream_mid != bob.upstream_mid and alice.payload == setup_body()
    for sent in (alice, bob):
        assert answer(relay, sent, "2.01").code == "2.01"
    # A GET of all: the server's capabilities and default configuration stay, each setup is shown to its owner only,
    # under the owner's own tsid.
    get_all = relayed(relay.request(inbound("alice", ALICE, "GET", "tm-setup"), NOW))
    assert get_all.path == ("tm-setup", f"cuid={OWN}")
    upstream = {SETUP: {"max-config-values": {"measurement-interval": "day"}, "telemetry": [
        {"tsid": alice.upstream_mid, **config_entry(measurement_interval="hour")},
        {"tsid": bob.upstream_mid, **config_entry(measurement_interval="hour")},
    ]}}  # fmt: skip
    shown = decode_telemetry(answer(relay, get_all, "2.05", upstream).payload)[SETUP]
    assert shown["max-config-values"] == {"measurement-interval": "day"}
    assert [entry["tsid"] for entry in shown["telemetry"]] == [1]
    # The same tsid again reaches the same upstream tsid; one the client never had is not asked upstream.
    again = relayed(relay.request(inbound("alice", ALICE, "GET", "tm-setup", "tsid=1"), NOW))
    assert again.path[-1] == f"tsid={alice.upstream_mid}"
    unknown = relay.request(inbound("alice", ALICE, "GET", "tm-setup", "tsid=9"), NOW)
    assert isinstance(unknown, Reply) and unknown.code == "4.04"


def test_a_tsid_below_the_clients_newest_is_refused_here_as_the_server_would_rfc9244_s7_1_2(tmp_path: Path) -> None:
    relay = relay_core(tmp_path)
    sent = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm-setup", "tsid=5", payload=setup_body()), NOW))
    answer(relay, sent, "2.01")
    lower = relay.request(inbound("alice", ALICE, "PUT", "tm-setup", "tsid=3", payload=setup_body()), NOW)
    assert isinstance(lower, Reply) and lower.code == "4.00" and "tsid=5" in lower.diagnostic
    # Another client's numbers are its own.
    relayed(relay.request(inbound("bob", BOB, "PUT", "tm-setup", "tsid=3", payload=setup_body()), NOW))


def test_a_telemetry_report_names_the_clients_mitigations_by_their_upstream_mids_and_back_rfc9244_s8_1_6(
    tmp_path: Path,
) -> None:
    relay = relay_core(tmp_path)
    upstream_mid = mitigation(relay, "alice", ALICE, 40)
    mitigation(relay, "bob", BOB, 40)
    sent = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=7", payload=report_body(40)), NOW))
    assert sent.path == ("tm", f"cuid={OWN}", f"tmid={sent.upstream_mid}")
    entry = decode_telemetry(sent.payload or b"")[TM]["pre-or-ongoing-mitigation"][0]
    assert entry["target"]["mid-list"] == [upstream_mid]
    assert (
        entry["total-attack-traffic"]
        == decode_telemetry(report_body(40))[TM]["pre-or-ongoing-mitigation"][0]["total-attack-traffic"]
    )
    assert answer(relay, sent, "2.04").code == "2.04"
    # A mitigation the client does not have through this gateway is refused here, as the server refuses it.
    refused = relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=8", payload=report_body(41)), NOW)
    assert isinstance(refused, Reply) and refused.code == "4.00"
    # A GET with a 'mid' filter (§8.2) asks upstream about the upstream 'mid'; the answer comes back in the client's
    # numbers.
    get = relayed(relay.request(inbound("alice", ALICE, "GET", "tm", query=("mid=40",)), NOW))
    assert get.query == (f"mid={upstream_mid}",)
    upstream = {TM: {"pre-or-ongoing-mitigation": [
        {"tmid": sent.upstream_mid, "target": {"mid-list": [upstream_mid]}, "total-attack-traffic": []},
    ]}}  # fmt: skip
    shown = decode_telemetry(answer(relay, get, "2.05", upstream).payload)[TM]["pre-or-ongoing-mitigation"]
    assert [(e["tmid"], e["target"]["mid-list"]) for e in shown] == [(7, [40])]


def test_server_originated_telemetry_notifications_reach_only_the_observer_whose_report_they_are_rfc9244_s8_3(
    tmp_path: Path,
) -> None:
    relay = relay_core(tmp_path)
    alice = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=1", payload=report_body()), NOW))
    bob = relayed(relay.request(inbound("bob", BOB, "PUT", "tm", "tmid=1", payload=report_body()), NOW))
    answer(relay, alice, "2.04")
    answer(relay, bob, "2.04")
    observe = relayed(relay.request(inbound("alice", ALICE, "GET", "tm", observe=0), NOW))
    assert observe.observe == 0 and observe.path == ("tm", f"cuid={OWN}")
    measured = [{"unit": "packet-ps", "mid-percentile-g": "900"}]

    def notified(upstream_tmid: int | None) -> Reply | None:
        entry = {"tmid": upstream_tmid, "target": {"target-prefix": ["203.0.113.0/24"]}, "total-traffic": measured}
        body = encode_telemetry({TM: {"pre-or-ongoing-mitigation": [entry]}})
        return relay.notification(observe, "2.05", body, DOTS_CBOR, None, NOW)

    mine = notified(alice.upstream_mid)
    assert mine is not None
    entries = decode_telemetry(mine.payload)[TM]["pre-or-ongoing-mitigation"]
    assert [(e["tmid"], e["total-traffic"]) for e in entries] == [(1, measured)]
    assert notified(bob.upstream_mid) is None


def test_a_delete_of_all_of_a_cuids_telemetry_deletes_the_clients_own_upstream_one_by_one_rfc9244_s7_4(
    tmp_path: Path,
) -> None:
    relay = relay_core(tmp_path)
    nothing = relay.request(inbound("alice", ALICE, "DELETE", "tm-setup"), NOW)
    assert isinstance(nothing, Reply) and nothing.code == "2.02"  # §7.1.4: 2.02 whether or not there was any
    sent = [relayed(relay.request(inbound("alice", ALICE, "PUT", "tm-setup", f"tsid={n}", payload=setup_body()), NOW))
            for n in (1, 2)]  # fmt: skip
    bob = relayed(relay.request(inbound("bob", BOB, "PUT", "tm-setup", "tsid=1", payload=setup_body()), NOW))
    for step in (*sent, bob):
        answer(relay, step, "2.01")
    batch = relay.request(inbound("alice", ALICE, "DELETE", "tm-setup"), NOW)
    assert isinstance(batch, Batch)
    assert [step.path for step in batch.steps] == [("tm-setup", f"cuid={OWN}", f"tsid={s.upstream_mid}") for s in sent]
    for step in batch.steps:
        answer(relay, step, "2.02")
    gone = relay.request(inbound("alice", ALICE, "GET", "tm-setup", "tsid=1"), NOW)
    assert isinstance(gone, Reply) and gone.code == "4.04"
    assert (
        relayed(relay.request(inbound("bob", BOB, "GET", "tm-setup", "tsid=1"), NOW)).upstream_mid == bob.upstream_mid
    )


def test_the_telemetry_mapping_and_counters_survive_a_restart_of_the_gateway(tmp_path: Path) -> None:
    relay = relay_core(tmp_path)
    sent = relayed(relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=3", payload=report_body()), NOW))
    answer(relay, sent, "2.04")
    restarted = relay_core(tmp_path)
    get = relayed(restarted.request(inbound("alice", ALICE, "GET", "tm", "tmid=3"), NOW))
    assert get.upstream_mid == sent.upstream_mid
    other = relayed(restarted.request(inbound("bob", BOB, "PUT", "tm", "tmid=3", payload=report_body()), NOW))
    assert other.upstream_mid is not None and sent.upstream_mid is not None
    assert other.upstream_mid > sent.upstream_mid  # §8.2: tmids increase under the gateway's cuid


def test_a_server_domain_gateway_relays_telemetry_as_it_came_with_cdid_rfc9244_s5_2(tmp_path: Path) -> None:
    relay = relay_core(tmp_path, "server-domain")
    put = inbound("alice", ALICE, "PUT", "tm-setup", "tsid=4", payload=setup_body(), hop_limit=3)
    sent = relayed(relay.request(put, NOW))
    assert sent.path == ("tm-setup", f"cdid={ALICE}", f"cuid={ALICE}", "tsid=4")
    assert (sent.payload, sent.hop_limit) == (setup_body(), 2)
    body = {TM: {"pre-or-ongoing-mitigation": [{"tmid": 2, "target": {"target-prefix": ["203.0.113.0/24"]}}]}}
    get = relayed(relay.request(inbound("alice", ALICE, "GET", "tm", "tmid=2", observe=0), NOW))
    assert (get.path, get.observe) == (("tm", f"cdid={ALICE}", f"cuid={ALICE}", "tmid=2"), 0)
    assert decode_telemetry(answer(relay, get, "2.05", body).payload) == body


def test_telemetry_gets_5_03_while_the_upstream_session_is_down(tmp_path: Path) -> None:
    relay = relay_core(tmp_path)
    relay.upstream_changed(False)
    reply = relay.request(inbound("alice", ALICE, "PUT", "tm", "tmid=1", payload=report_body()), NOW)
    assert isinstance(reply, Reply) and reply.code == "5.03" and reply.max_age == 30


def test_telemetry_attributes_in_a_mitigation_request_and_its_status_pass_through_with_the_mid_mapped_rfc9244_s9(
    tmp_path: Path,
) -> None:
    relay = relay_core(tmp_path)
    rates = [{"unit": "packet-ps", "mid-percentile-g": "5000"}]
    request = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/24"], "lifetime": 3600,
                                  "ietf-dots-telemetry:total-attack-traffic": rates}]}}  # fmt: skip
    payload = encode_signal(request)
    sent = relayed(relay.request(inbound("alice", ALICE, "PUT", "mitigate", "mid=5", payload=payload), NOW))
    assert sent.payload == payload
    status = {SCOPE: {"scope": [{"mid": sent.upstream_mid, "lifetime": 3600, "status": "attack-mitigation-in-progress",
                                 "ietf-dots-telemetry:total-traffic": rates}]}}  # fmt: skip
    shown = decode_signal(answer(relay, sent, "2.01", status).payload)[SCOPE]["scope"][0]
    assert (shown["mid"], shown["ietf-dots-telemetry:total-traffic"]) == (5, rates)


def test_a_client_may_not_report_or_ask_telemetry_through_the_gateway_for_targets_it_may_not_protect_rfc9244_s8_2(
    tmp_path: Path,
) -> None:
    """Upstream the gateway is authorized for all its clients, and server-originated telemetry for a target sums the
    gateway's mitigations there (other clients' too): the gateway checks each client's targets itself."""
    alice = ClientAuthorization(name="alice", cuid=ALICE, prefixes=(ipaddress.ip_network("192.0.2.0/28"),))
    for kind in ("client-domain", "server-domain"):
        (tmp_path / kind).mkdir()
        relay = relay_core(tmp_path / kind, kind)
        put = inbound("alice", ALICE, "PUT", "tm", "tmid=1", payload=report_body(), authorization=alice)
        refused = relay.request(put, NOW)
        assert isinstance(refused, Reply) and refused.code == "4.00" and "203.0.113.0/24" in refused.diagnostic
        inside = report_entry(("192.0.2.0/28",))
        payload = encode_telemetry({TM: {"pre-or-ongoing-mitigation": [inside]}})
        mine = inbound("alice", ALICE, "PUT", "tm", "tmid=1", payload=payload, authorization=alice)
        assert relayed(relay.request(mine, NOW)).payload == payload
