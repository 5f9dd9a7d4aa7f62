"""A DOTS gateway's upstream leg: the mitigations it relays make its session a mitigating one (RFC 9132 §4.5, §4.7)."""

from __future__ import annotations

from pathlib import Path

from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.store.client_state import ClientStateStore

CUID = "gatewaycuid0000000000a"


def test_relayed_mitigations_count_as_the_clients_own_for_mitigating_config_and_session_loss_rfc9132_s4_7(
    tmp_path: Path,
) -> None:
    core = DotsClientCore(CUID, ClientStateStore(tmp_path / "state.db", CUID), now=0.0)
    assert not core.mitigating
    held: list[int] = [1]
    core.relaying = lambda: bool(held)
    assert core.mitigating
    core.connected(0.0, reliable=False)
    while core.next_event() is not None:
        pass
    allowed = core.parameters.missing_hb_allowed
    interval = core.parameters.heartbeat_interval
    now = 0.0
    events: list[ev.Event] = []
    for _ in range(allowed + 2):  # every heartbeat unanswered
        now += interval
        core.handle_timer(now)
        while (event := core.next_event()) is not None:
            events.append(event)
    # Under a (relayed) mitigation the session is kept and a new one tried alongside (§4.7), not given up.
    assert any(isinstance(event, ev.SessionDegraded) for event in events)
    assert not any(isinstance(event, ev.SessionLost) for event in events)
