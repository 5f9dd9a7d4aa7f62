"""Following what clients install through other nodes or workers besides mitigations: session configurations
(RFC 9132 §4.5) and telemetry setups (RFC 9244 §7).

A client whose session moves (its node died and its DTLS peer lands on another; a TLS reconnect lands on another
worker) finds what it set, and a change made through one node governs the others' decisions: heartbeat interval and
missing-hb-allowed, mitigating-config, telemetry. The shells learn which clients changed (PostgreSQL: a NOTIFY from a
trigger, opendots.store.postgres_state; SQLite workers: their change log) and note them here; between two decisions
they read those clients' rows and feed them to the core (`SignalServer.client_state_elsewhere`), as they feed
mitigations to `changed_elsewhere`.
"""

from __future__ import annotations

from collections.abc import Mapping

from opendots.signal.server.core import Event
from opendots.signal.server.core.server import SignalServer
from opendots.store.records import SessionConfigRecord, TelemetrySetupRecord

ClientState = tuple[SessionConfigRecord | None, list[TelemetrySetupRecord]]


class FollowedClients:
    """The clients another node changed since this one last read them."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.everything = False
        """Notifications may have been missed (a listener lost, a log pruned): read every client's state."""
        self.followed = 0
        """Clients whose state changed here because of another node's write."""

    def changed(self, client: str) -> None:
        self.pending.add(client)

    def lost_track(self) -> None:
        self.everything = True

    @property
    def due(self) -> bool:
        return self.everything or bool(self.pending)

    def wanted(self) -> set[str] | None:
        """The clients to read now (None: all of them); they are no longer pending."""
        wanted = None if self.everything else set(self.pending)
        self.pending.clear()
        self.everything = False
        return wanted

    def feed(
        self, core: SignalServer, wanted: set[str] | None, found: Mapping[str, ClientState], now: float
    ) -> list[Event]:
        """FOUND (what the database holds for the clients WANTED, None: all) fed to CORE; the events that follow."""
        clients = set(found) | (wanted if wanted is not None else {c.name for c in core.settings.clients})
        events: list[Event] = []
        for client in sorted(clients):
            config, setups = found.get(client, (None, []))
            changed = core.client_state_elsewhere(client, config, setups, now)
            self.followed += bool(changed)
            events += changed
        return events
