"""The signal relay of a client-domain gateway with the data channel: a client's alias and ACL names go upstream as
its data channel made them there (opendots.gateway.data_names), and come back as it named them."""

from __future__ import annotations

from pathlib import Path

from opendots.gateway.data_names import derive_prefix
from opendots.gateway.relay import DOTS_CBOR, Inbound, Outbound, RelayCore, RelaySettings
from opendots.model import decode_signal, encode_signal
from opendots.store.gateway_state import RelayStore

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
OWN, ALICE = "gatewaycuid0000000000a", "alicecuid0000000000000"


def test_a_relayed_mitigation_on_an_alias_names_the_clients_alias_upstream_and_back_rfc9132_s4_4_1(
    tmp_path: Path,
) -> None:
    relay = RelayCore(
        RelaySettings(kind="client-domain", identity="gw1", upstream_cuid=OWN), RelayStore(tmp_path / "r")
    )
    relay.data_names = {"alice": derive_prefix(ALICE)}.__getitem__
    relay.upstream_changed(True)
    body = {SCOPE: {"scope": [{"alias-name": ["web"], "lifetime": 60}]}}
    inbound = Inbound("alice", ALICE, "PUT", ("mitigate", f"cuid={ALICE}", "mid=3"), payload=encode_signal(body))
    step = relay.request(inbound, 0.0)
    assert isinstance(step, Outbound) and step.upstream_mid is not None
    upstream = decode_signal(step.payload or b"")[SCOPE]["scope"][0]["alias-name"]
    assert upstream == [derive_prefix(ALICE) + "web"]
    answer = encode_signal({SCOPE: {"scope": [{"mid": step.upstream_mid, "alias-name": upstream, "lifetime": 60}]}})
    reply = relay.answered(step, "2.01", answer, DOTS_CBOR, None, 0.0)
    assert decode_signal(reply.payload)[SCOPE]["scope"][0] == {"mid": 3, "alias-name": ["web"], "lifetime": 60}
