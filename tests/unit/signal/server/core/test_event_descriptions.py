"""Log lines name the core's events in DOTS terms (kind, client, cuid, mid), never as a Python repr."""

from __future__ import annotations

from opendots.signal.server.core import MitigationWithdrawn, PeerLost
from opendots.signal.server.core.events import describe


def test_an_event_is_described_by_its_kind_client_cuid_and_mid():
    withdrawn = MitigationWithdrawn("alpha", "c-1", 7, "c-1/7", "operator")
    assert describe(withdrawn) == "MitigationWithdrawn client alpha cuid c-1 mid 7"
    assert describe(PeerLost("alpha")) == "PeerLost client alpha"
