"""A DOTS client core (opendots.signal.client.core) driven by a fake clock: connected with a granted session
configuration, its events drained, a mitigation granted."""

from __future__ import annotations

from pathlib import Path

from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.core.scope import MitigationScope
from opendots.signal.client.shell.operations import ClientOperations
from opendots.store.client_state import ClientStateStore

CUID = "dz6pHjaADkaFTbjr0JGBpw"


SCOPE = MitigationScope(target_prefixes=("192.0.2.0/24",), target_protocols=(17,), lifetime=600)


T0 = 1_700_000_000.0


def events(core: DotsClientCore) -> list:
    drained = []
    while (event := core.next_event()) is not None:
        drained.append(event)
    return drained


def config_body(idle_hb: int, missing: int, mitigating_hb: int | None = None) -> dict:
    def one(hb: int) -> dict:
        return {"heartbeat-interval": {"current-value": hb}, "missing-hb-allowed": {"current-value": missing}}

    return {
        "ietf-dots-signal-channel:signal-config": {
            "idle-config": one(idle_hb),
            "mitigating-config": one(mitigating_hb if mitigating_hb is not None else idle_hb),
        }
    }


def connected_core(store: ClientStateStore, idle_hb: int = 30, missing: int = 3, mitigating_hb: int | None = None):
    core = DotsClientCore(CUID, store, now=T0)
    core.connected(T0, reliable=False, server="dots.example")
    sent = events(core)
    config_get = next(e.request for e in sent if e.request.kind is RequestKind.CONFIG_GET)
    core.handle_response(config_get, DotsResponse("2.05", config_body(idle_hb, missing, mitigating_hb), 3600), T0)
    assert any(isinstance(e, ev.ConfigUpdated) for e in events(core))
    return core


def grant(core: DotsClientCore, now: float, lifetime: int = 600) -> int:
    request = core.mitigate(SCOPE, now)
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": request.mid, "lifetime": lifetime}]}}
    core.handle_response(request, DotsResponse("2.01", body), now)
    return request.mid


def offline_operations(tmp_path: Path) -> ClientOperations:
    """The agent's operations on a fresh core whose sender fails the test if anything is sent: for argument checks
    that must refuse before a request leaves."""
    store = ClientStateStore(tmp_path / "state.db", CUID)
    core = DotsClientCore(store.cuid, store, now=0.0)

    async def must_not_send(request: DotsRequest) -> DotsResponse:
        raise AssertionError(f"nothing should be sent, got {request}")

    return ClientOperations(core, must_not_send)
