"""The relay core: mid mapping, 'cdid' insertion, Hop-Limit, upstream-loss answers (RFC 9132 §4.4.1, RFC 8768)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ClientAuthorization
from opendots.gateway.relay import DOTS_CBOR, Inbound, Outbound, RelayCore, RelaySettings, Reply
from opendots.model import decode_signal, encode_signal
from opendots.store.gateway_state import RelayStore

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
OWN = "gatewaycuid0000000000a"
ALICE, BOB = "alicecuid0000000000000", "bobcuid000000000000000"
NOW = 1_000_000.0


def request_body(prefix: str = "203.0.113.1/32", lifetime: int = 3600) -> bytes:
    return encode_signal({SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": lifetime}]}})


def ack(mid: int, lifetime: int = 3600) -> bytes:
    return encode_signal({SCOPE: {"scope": [{"mid": mid, "lifetime": lifetime}]}})


def put(client: str, cuid: str, mid: int, **kwargs: Any) -> Inbound:
    return Inbound(
        client=client,
        peer_cuid=cuid,
        method="PUT",
        path=("mitigate", f"cuid={cuid}", f"mid={mid}"),
        payload=kwargs.pop("payload", request_body()),
        **kwargs,
    )


def get(client: str, cuid: str, mid: int | None = None, **kwargs: Any) -> Inbound:
    mid_part = () if mid is None else (f"mid={mid}",)
    return Inbound(client=client, peer_cuid=cuid, method="GET", path=("mitigate", f"cuid={cuid}", *mid_part), **kwargs)


def core(tmp_path: Path, kind: str = "client-domain", **settings: Any) -> RelayCore:
    relay = RelayCore(
        RelaySettings(kind=kind, identity="gw1", upstream_cuid=OWN, **settings), RelayStore(tmp_path / "r.db")
    )  # type: ignore[arg-type]
    relay.upstream_changed(True)
    return relay


def relayed(step: Reply | Outbound) -> Outbound:
    assert isinstance(step, Outbound), step
    return step


def accept(relay: RelayCore, step: Outbound, lifetime: int = 3600) -> Reply:
    assert step.upstream_mid is not None
    return relay.answered(step, "2.01", ack(step.upstream_mid, lifetime), DOTS_CBOR, None, NOW)


def test_a_client_domain_gateway_sends_every_clients_request_under_its_own_cuid_with_a_mid_of_its_own(
    tmp_path: Path,
) -> None:
    """RFC 9132 §4.4.1: aggregated on one session, the clients' mitigations kept apart by distinct upstream mids."""
    relay = core(tmp_path)
    alice = relayed(relay.request(put("alice", ALICE, 7), NOW))
    bob = relayed(relay.request(put("bob", BOB, 7), NOW))
    assert alice.path == ("mitigate", f"cuid={OWN}", f"mid={alice.upstream_mid}")
    assert bob.path == ("mitigate", f"cuid={OWN}", f"mid={bob.upstream_mid}")
    assert alice.upstream_mid != bob.upstream_mid
    assert alice.payload == request_body()  # the body has no mid and no cuid: relayed as it came
    reply = accept(relay, alice)
    assert (reply.code, decode_signal(reply.payload)) == ("2.01", {SCOPE: {"scope": [{"mid": 7, "lifetime": 3600}]}})
    # A refresh of the same downstream mid reaches the same upstream mid.
    again = relayed(relay.request(put("alice", ALICE, 7, payload=request_body(lifetime=60)), NOW))
    assert again.upstream_mid == alice.upstream_mid


def test_the_mapping_survives_a_restart_of_the_gateway(tmp_path: Path) -> None:
    relay = core(tmp_path)
    sent = relayed(relay.request(put("alice", ALICE, 9), NOW))
    accept(relay, sent)
    restarted = core(tmp_path)
    assert relayed(restarted.request(get("alice", ALICE, 9), NOW)).upstream_mid == sent.upstream_mid
    assert relayed(restarted.request(put("bob", BOB, 1), NOW)).upstream_mid != sent.upstream_mid  # counter kept


def test_a_client_sees_only_its_own_mitigations_in_a_get_of_all_with_its_own_mids(tmp_path: Path) -> None:
    relay = core(tmp_path)
    alice = relayed(relay.request(put("alice", ALICE, 7), NOW))
    bob = relayed(relay.request(put("bob", BOB, 3), NOW))
    accept(relay, alice)
    accept(relay, bob)
    step = relayed(relay.request(get("alice", ALICE), NOW))
    assert step.path == ("mitigate", f"cuid={OWN}")
    both = {SCOPE: {"scope": [{"mid": m, "lifetime": 100, "status": "attack-mitigation-in-progress"}
                              for m in (alice.upstream_mid, bob.upstream_mid)]}}  # fmt: skip
    reply = relay.answered(step, "2.05", encode_signal(both), DOTS_CBOR, None, NOW)
    entries = decode_signal(reply.payload)[SCOPE]["scope"]
    assert [(e["mid"], e["status"]) for e in entries] == [(7, "attack-mitigation-in-progress")]
    # A notification that only concerns bob's mitigation is not sent to alice's observer at all.
    only_bob = {SCOPE: {"scope": [{"mid": bob.upstream_mid, "lifetime": 90, "status": "attack-stopped"}]}}
    assert relay.notification(step, "2.05", encode_signal(only_bob), DOTS_CBOR, None, NOW) is None


def test_a_get_or_delete_of_a_mid_the_client_never_had_accepted_is_answered_4_04_here(tmp_path: Path) -> None:
    relay = core(tmp_path)
    accept(relay, relayed(relay.request(put("bob", BOB, 3), NOW)))
    assert isinstance(step := relay.request(get("alice", ALICE, 3), NOW), Reply) and step.code == "4.04"
    delete = Inbound("alice", ALICE, "DELETE", ("mitigate", f"cuid={ALICE}", "mid=3"))
    assert isinstance(step := relay.request(delete, NOW), Reply) and step.code == "4.04"
    assert isinstance(step := relay.request(get("alice", ALICE), NOW), Reply) and step.code == "4.04"


def test_a_delete_accepted_upstream_removes_the_link(tmp_path: Path) -> None:
    relay = core(tmp_path)
    accept(relay, relayed(relay.request(put("alice", ALICE, 7), NOW)))
    assert relay.holds("alice") and not relay.holds("bob")  # alice's leg is mitigating (RFC 9132 §4.5)
    assert core(tmp_path).holds("alice")
    delete = relayed(relay.request(Inbound("alice", ALICE, "DELETE", ("mitigate", f"cuid={ALICE}", "mid=7")), NOW))
    assert relay.answered(delete, "2.02", b"", None, None, NOW).code == "2.02"
    assert relay.links == {} and core(tmp_path).links == {}
    assert not relay.holds("alice")
    assert isinstance(step := relay.request(get("alice", ALICE), NOW), Reply) and step.code == "4.04"


def test_a_server_domain_gateway_inserts_the_clients_certificate_hash_as_cdid_and_strips_a_clients_own(
    tmp_path: Path,
) -> None:
    """RFC 9132 §4.4.1.2: 'cdid' is the SPKI hash of the client's certificate, before 'cuid'; a 'cdid' supplied by
    the client MUST be stripped by the first server-domain gateway."""
    relay = core(tmp_path, "server-domain")
    inbound = Inbound(
        "alice", ALICE, "PUT", ("mitigate", "cdid=forged", "cuid=somecuid", "mid=4"), payload=request_body()
    )
    step = relayed(relay.request(inbound, NOW))
    assert step.path == ("mitigate", f"cdid={ALICE}", "cuid=somecuid", "mid=4")
    reply = relay.answered(step, "2.01", ack(4), DOTS_CBOR, None, NOW)
    assert reply.payload == ack(4)  # mids are the client's own: the answer is relayed byte for byte
    (tmp_path / "plain").mkdir()
    plain = core(tmp_path / "plain", "server-domain", insert_cdid=False)
    assert relayed(plain.request(inbound, NOW)).path == ("mitigate", "cuid=somecuid", "mid=4")


def test_hop_limit_is_inserted_when_absent_and_decremented_when_present_rfc8768_s3(tmp_path: Path) -> None:
    relay = core(tmp_path, hop_limit=10)
    assert relayed(relay.request(put("alice", ALICE, 1), NOW)).hop_limit == 10
    assert relayed(relay.request(put("alice", ALICE, 2, hop_limit=6), NOW)).hop_limit == 5


def test_an_exhausted_hop_limit_is_answered_5_08_with_the_gateway_identity_and_allocates_nothing(
    tmp_path: Path,
) -> None:
    relay = core(tmp_path)
    reply = relay.request(put("alice", ALICE, 1, hop_limit=1), NOW)
    assert isinstance(reply, Reply) and (reply.code, reply.diagnostic) == ("5.08", "gw1")
    assert relay.counters["hop-limit-reached"] == 1
    assert relayed(relay.request(put("alice", ALICE, 1), NOW)).upstream_mid == 1  # no mid was burnt


def test_a_5_08_from_upstream_is_relayed_with_the_identity_prepended_unless_it_already_names_it_rfc8768_s4(
    tmp_path: Path,
) -> None:
    relay = core(tmp_path)
    sent = relayed(relay.request(put("alice", ALICE, 1), NOW))
    reply = relay.answered(sent, "5.08", b"gw2", 0, None, NOW)
    assert (reply.code, reply.diagnostic) == ("5.08", "gw1 gw2")
    sent = relayed(relay.request(put("alice", ALICE, 2), NOW))
    reply = relay.answered(sent, "5.08", b"gw2 gw1", 0, None, NOW)
    assert (reply.code, reply.diagnostic, relay.counters["loops-detected"]) == ("5.08", "gw2 gw1", 1)
    assert relay.links == {}


def test_while_the_upstream_session_is_down_requests_get_5_03_with_max_age(tmp_path: Path) -> None:
    relay = core(tmp_path, retry_after=17)
    relay.upstream_changed(False)
    reply = relay.request(put("alice", ALICE, 1), NOW)
    assert isinstance(reply, Reply) and (reply.code, reply.max_age) == ("5.03", 17)
    assert "upstream" in reply.diagnostic
    relay.upstream_changed(True)
    sent = relayed(relay.request(put("alice", ALICE, 1), NOW))
    failed = relay.failed(sent, "no answer")
    assert (failed.code, failed.max_age) == ("5.03", 17)


def test_accepted_mitigations_are_put_again_with_their_remaining_lifetime_when_the_upstream_returns(
    tmp_path: Path,
) -> None:
    relay = core(tmp_path)
    sent = relayed(relay.request(put("alice", ALICE, 7), NOW))
    accept(relay, sent, lifetime=3600)
    indefinite = relayed(relay.request(put("bob", BOB, 2, payload=request_body("198.51.100.1/32", -1)), NOW))
    accept(relay, indefinite, lifetime=-1)
    again = relay.reestablish(NOW + 600)
    assert [(s.client, s.path, s.method) for s in again] == [
        ("alice", sent.path, "PUT"),
        ("bob", indefinite.path, "PUT"),
    ]
    lifetimes = [decode_signal(s.payload or b"")[SCOPE]["scope"][0]["lifetime"] for s in again]
    assert lifetimes == [3000, -1]
    assert relay.answered(again[0], "2.04", ack(sent.upstream_mid or 0, 3000), DOTS_CBOR, None, NOW).code == "2.04"
    assert relay.counters["reestablished"] == 1
    # An expired one is not re-established, and is forgotten.
    assert [s.client for s in relay.reestablish(NOW + 4000)] == ["bob"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_methods_other_than_get_put_delete_are_refused_4_05(tmp_path: Path, method: str) -> None:
    relay = core(tmp_path)
    reply = relay.request(Inbound("alice", ALICE, method, ("mitigate", f"cuid={ALICE}", "mid=1")), NOW)
    assert isinstance(reply, Reply) and reply.code == "4.05"


def test_an_efficacy_update_of_a_mitigation_not_held_is_answered_4_04_without_allocating_a_mid_rfc9132_s4_4_3(
    tmp_path: Path,
) -> None:
    relay = core(tmp_path)
    reply = relay.request(put("alice", ALICE, 4, if_match_empty=True), NOW)
    assert isinstance(reply, Reply) and reply.code == "4.04"
    accept(relay, first := relayed(relay.request(put("alice", ALICE, 4), NOW)))
    assert first.upstream_mid == 1
    update = relayed(relay.request(put("alice", ALICE, 4, if_match_empty=True), NOW))
    assert (update.upstream_mid, update.if_match_empty) == (1, True)


def test_a_loop_is_counted_at_every_pass_but_alerted_once_a_minute_rfc8768_s4(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = core(tmp_path)
    with caplog.at_level("DEBUG", logger="opendots.gateway.relay"):
        for mid in (1, 2, 3):
            sent = relayed(relay.request(put("alice", ALICE, mid), NOW))
            relay.answered(sent, "5.08", b"gw2 gw1", 0, None, NOW + mid)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "DOTS gateway loop" in r.getMessage()]
    assert (len(errors), relay.counters["loops-detected"]) == (1, 3)
    sent = relayed(relay.request(put("alice", ALICE, 4), NOW))
    caplog.clear()
    relay.answered(sent, "5.08", b"gw2 gw1", 0, None, NOW + 100)
    assert [r.levelname for r in caplog.records if "DOTS gateway loop" in r.getMessage()] == ["ERROR"]


def test_a_client_may_not_ask_through_the_gateway_for_what_it_may_not_protect_rfc8783_s3_3(tmp_path: Path) -> None:
    """The upstream server sees the gateway, authorized for all its clients: the gateway checks each one."""
    alice = ClientAuthorization(name="alice", cuid=ALICE, prefixes=(ipaddress.ip_network("203.0.113.0/28"),))
    for kind in ("client-domain", "server-domain"):
        (tmp_path / kind).mkdir()
        relay = core(tmp_path / kind, kind)
        outside = relay.request(
            put("alice", ALICE, 1, payload=request_body("198.51.100.1/32"), authorization=alice), NOW
        )
        assert isinstance(outside, Reply) and outside.code == "4.00" and "198.51.100.1/32" in outside.diagnostic
        garbled = relay.request(put("alice", ALICE, 1, payload=b"\xff", authorization=alice), NOW)
        assert isinstance(garbled, Reply) and garbled.code.startswith("4.")
        inside = relay.request(put("alice", ALICE, 1, payload=request_body("203.0.113.1/32"), authorization=alice), NOW)
        assert isinstance(inside, Outbound)


def test_a_server_domain_gateway_answers_a_cuid_collision_between_its_clients_itself_rfc9132_s4_4_1_1(
    tmp_path: Path,
) -> None:
    relay = core(tmp_path, "server-domain")
    accept(relay, relayed(relay.request(put("alice", "sharedcuid", 1), NOW)))
    reply = relay.request(put("bob", "sharedcuid", 2), NOW)
    assert isinstance(reply, Reply) and reply.code == "4.09"
    entry = decode_signal(reply.payload)[SCOPE]["scope"][0]
    assert entry["conflict-information"]["conflict-cause"] == "cuid-collision"
    assert isinstance(relay.request(put("alice", "sharedcuid", 2), NOW), Outbound)


def withdraw(relay: RelayCore, client: str, cuid: str, mid: int) -> Reply:
    """The client's DELETE, relayed and accepted upstream."""
    delete = relayed(relay.request(Inbound(client, cuid, "DELETE", ("mitigate", f"cuid={cuid}", f"mid={mid}")), NOW))
    return relay.answered(delete, "2.02", b"", None, None, NOW)


@pytest.mark.parametrize("kind", ["client-domain", "server-domain"])
def test_a_duplicate_put_accepted_after_the_withdrawal_does_not_bring_the_mitigation_back_rfc9132_s4_4_4(
    tmp_path: Path, kind: str
) -> None:
    """A PUT relayed before the client's DELETE (a NON retransmission: a new message) whose answer comes after the
    DELETE's: the mitigation stays withdrawn here, and the gateway withdraws what the late PUT re-created upstream."""
    relay = core(tmp_path, kind)
    first = relayed(relay.request(put("alice", ALICE, 7), NOW))
    accept(relay, first)
    duplicate = relayed(relay.request(put("alice", ALICE, 7), NOW))
    assert withdraw(relay, "alice", ALICE, 7).code == "2.02"
    assert relay.answered(duplicate, "2.04", ack(7 if first.upstream_mid is None else first.upstream_mid), DOTS_CBOR,
                          None, NOW).code == "2.04"  # fmt: skip
    assert relay.links == {} and core(tmp_path, kind).links == {} and not relay.holds("alice")
    [cleanup] = relay.stale
    assert (cleanup.method, cleanup.path) == ("DELETE", duplicate.path)
    # A new PUT after the withdrawal is a new mitigation, linked as usual.
    relay.stale.clear()
    again = relayed(relay.request(put("alice", ALICE, 7), NOW))
    accept(relay, again)
    assert list(relay.links) == [("alice", ALICE, 7)] and relay.stale == []
    # The clean-up DELETE's answer (when it comes after that) does not remove the new link (client-domain: its
    # upstream mid differs; server-domain: no clean-up is queued while a newer PUT is on its way).
    if kind == "client-domain":
        assert again.upstream_mid != cleanup.upstream_mid
        relay.answered(cleanup, "2.02", b"", None, None, NOW)
        assert list(relay.links) == [("alice", ALICE, 7)]


def test_a_reestablishment_answered_after_the_clients_withdrawal_does_not_bring_the_mitigation_back(
    tmp_path: Path,
) -> None:
    """The upstream session came back: the held mitigations are PUT again one after the other; one the client
    withdraws meanwhile is not sent, and one whose re-establishment was already on its way is not linked again."""
    relay = core(tmp_path)
    alice = relayed(relay.request(put("alice", ALICE, 7), NOW))
    accept(relay, alice)
    bob = relayed(relay.request(put("bob", BOB, 2, payload=request_body("198.51.100.1/32")), NOW))
    accept(relay, bob)
    first, second = relay.reestablish(NOW + 10)
    assert (first.client, second.client) == ("alice", "bob")
    # alice withdraws while her re-establishment is on its way, bob while alice's is.
    assert withdraw(relay, "alice", ALICE, 7).code == "2.02"
    assert withdraw(relay, "bob", BOB, 2).code == "2.02"
    relay.answered(first, "2.04", ack(alice.upstream_mid or 0), DOTS_CBOR, None, NOW + 10)
    assert relay.links == {} and relay.counters["reestablished"] == 0
    assert [s.path for s in relay.stale] == [alice.path]
    assert not relay.current(second)  # the shell does not send it
    relay.dropped(second)
    assert relay._withdrawn == {} and relay._in_flight == Counter()  # nothing left to remember
