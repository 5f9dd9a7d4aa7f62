"""RFC 9132 §4.6: when the alternate server's TTL expires the client MUST fall back to the provisioned server,
except while an attack is active. An alternate that was never reached carries no attack: fall back."""

from __future__ import annotations

from pathlib import Path

from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsResponse
from opendots.signal.client.core.scope import MitigationScope
from opendots.store.client_state import ClientStateStore
from tests.helpers.client_core import CUID, T0, connected_core, events, grant

REDIRECT = {
    "ietf-dots-signal-channel:redirected-signal": {"alt-server": "alt.example", "alt-server-record": ["192.0.2.9"]}
}


def redirected_while_mitigating(tmp_path: Path) -> DotsClientCore:
    core = connected_core(ClientStateStore(tmp_path / "state.db", CUID))
    grant(core, T0)
    request = core.mitigate(MitigationScope(target_prefixes=("192.0.2.1/32",)), T0)
    core.handle_response(request, DotsResponse("5.03", REDIRECT, max_age=60), T0)
    events(core)
    return core


def test_redirection_ttl_expires_without_a_session_to_the_alternate_even_during_an_attack(tmp_path: Path) -> None:
    core = redirected_while_mitigating(tmp_path)
    core.disconnected()  # the alternate server never answered
    assert core.redirection(T0 + 10) == {"alt-server": "alt.example", "ttl-left": 50}
    core.handle_timer(T0 + 60)
    assert ev.RedirectExpired("alt.example") in events(core)
    assert core.redirection(T0 + 60) is None


def test_redirection_ttl_is_extended_during_an_attack_while_the_alternate_serves_it(tmp_path: Path) -> None:
    core = redirected_while_mitigating(tmp_path)
    core.handle_timer(T0 + 60)  # still in session (with the alternate) and mitigating: no fallback now
    assert ev.RedirectExpired("alt.example") not in events(core)
    assert core.redirection(T0 + 60) is not None
