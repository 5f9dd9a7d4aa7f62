"""A DOTS gateway's downstream leg: a client whose mitigations are relayed upstream is mitigating (RFC 9132 §4.5)."""

from __future__ import annotations

from pathlib import Path

from opendots.signal.server.core.sessionconfig import ParameterSet, SessionConfig
from tests.helpers.signal_harness import ALPHA, make_harness


def test_relayed_mitigations_put_the_clients_session_under_mitigating_config_rfc9132_s4_5(tmp_path: Path) -> None:
    config = SessionConfig(mitigating=ParameterSet(heartbeat_interval=15), idle=ParameterSet(heartbeat_interval=90))
    harness = make_harness(tmp_path, session_defaults=config)
    server = harness.server
    assert server.session_config(ALPHA.name).idle.heartbeat_interval == 90
    assert not server.is_enforcing(ALPHA.name)
    assert server._parameters(ALPHA.name).heartbeat_interval == 90
    relayed = {ALPHA.name}
    server.relaying = lambda name: name in relayed
    assert server.is_enforcing(ALPHA.name)
    assert server._parameters(ALPHA.name).heartbeat_interval == 15
    relayed.clear()
    assert server._parameters(ALPHA.name).heartbeat_interval == 90
