"""The relay core when the upstream server lost a relayed mitigation, or accepted one the client was told 5.03 about
(RFC 9132 §4.4.1, §4.7)."""

from __future__ import annotations

from pathlib import Path

from opendots.gateway.late import late_withdrawal
from opendots.gateway.relay import DOTS_CBOR, Inbound, Outbound, RelayCore, RelaySettings
from opendots.model import encode_signal
from opendots.store.gateway_state import RelayStore

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
OWN, ALICE = "gatewaycuid0000000000a", "alicecuid0000000000000"
NOW = 1_000_000.0


def core(tmp_path: Path) -> RelayCore:
    relay = RelayCore(
        RelaySettings(kind="client-domain", identity="gw1", upstream_cuid=OWN), RelayStore(tmp_path / "r.db")
    )
    relay.upstream_changed(True)
    return relay


def inbound(method: str, mid: int, lifetime: int = 3600) -> Inbound:
    body = encode_signal({SCOPE: {"scope": [{"target-prefix": ["203.0.113.1/32"], "lifetime": lifetime}]}})
    payload = body if method == "PUT" else None
    return Inbound("alice", ALICE, method, ("mitigate", f"cuid={ALICE}", f"mid={mid}"), payload=payload)


def accepted(relay: RelayCore, mid: int, lifetime: int = 3600) -> Outbound:
    sent = relay.request(inbound("PUT", mid, lifetime), NOW)
    assert isinstance(sent, Outbound) and sent.upstream_mid is not None
    ack = encode_signal({SCOPE: {"scope": [{"mid": sent.upstream_mid, "lifetime": lifetime}]}})
    assert relay.answered(sent, "2.01", ack, DOTS_CBOR, None, NOW).code == "2.01"
    return sent


def test_a_get_finding_a_mitigation_with_lifetime_left_gone_upstream_puts_it_again_under_the_same_mid(
    tmp_path: Path,
) -> None:
    """The server restarted without it: the gateway re-establishes it (and keeps the mapping, so the client that
    re-creates it after its 4.04 reaches the same upstream mid), as when its session comes back."""
    relay = core(tmp_path)
    first = accepted(relay, 5)
    get = relay.request(inbound("GET", 5), NOW + 10)
    assert isinstance(get, Outbound)
    assert relay.answered(get, "4.04", b"", None, None, NOW + 10).code == "4.04"
    [again] = relay.resend
    assert (again.method, again.path, again.reestablish) == ("PUT", first.path, True)
    assert [link["downstream"] for link in relay.status(NOW + 10)] == [f"cuid={ALICE}/mid=5"]
    recreated = relay.request(inbound("PUT", 5), NOW + 11)
    assert isinstance(recreated, Outbound) and recreated.upstream_mid == first.upstream_mid
    # One that has run out upstream is forgotten instead.
    accepted(relay, 6, lifetime=20)
    get = relay.request(inbound("GET", 6), NOW + 19)
    assert isinstance(get, Outbound)
    relay.resend.clear()
    relay.answered(get, "4.04", b"", None, None, NOW + 19)
    assert relay.resend == [] and [link["downstream"] for link in relay.status(NOW + 19)] == [f"cuid={ALICE}/mid=5"]


def test_a_put_answered_5_03_but_accepted_upstream_later_is_withdrawn_unless_its_mid_is_held(tmp_path: Path) -> None:
    relay = core(tmp_path)
    sent = relay.request(inbound("PUT", 6), NOW)
    assert isinstance(sent, Outbound)
    assert relay.failed(sent, "no answer").code == "5.03"
    withdrawal = late_withdrawal(relay, sent, "2.01")
    assert withdrawal is not None and (withdrawal.method, withdrawal.path) == ("DELETE", sent.path)
    assert late_withdrawal(relay, sent, "4.09") is None  # refused: nothing stands upstream
    held = accepted(relay, 7)
    assert late_withdrawal(relay, held, "2.01") is None  # a retransmission of one that stands
    again = relay.request(inbound("PUT", 8), NOW)
    assert isinstance(again, Outbound)
    assert late_withdrawal(relay, again, "2.01") is None  # its own answer, still awaited, decides
