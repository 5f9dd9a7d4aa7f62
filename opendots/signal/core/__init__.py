"""Sans-I/O DOTS signal-channel server core (RFC 9132): no sockets, no clocks, no database.

Feed `SignalServer.handle(Request, now)` with requests (CBOR payloads are decoded here); it returns a `Decision`:
the response, the changes to store, the events to act on. The shell stores the changes, then calls
`SignalServer.apply(decision)` (`opendots.signal.server.durable.settle` does both). Call `handle_timer(now)` when
`next_timer()` is due.
"""

from opendots.domain import Targets
from opendots.signal.core.authorization import AliasDirectory, StaticAliasDirectory
from opendots.signal.core.decision import Decision
from opendots.signal.core.events import (
    Event,
    HeartbeatDue,
    MitigationActivated,
    MitigationChanged,
    MitigationExpired,
    MitigationUpdated,
    MitigationWithdrawn,
    PeerBack,
    PeerLost,
    RedirectionChanged,
    SessionConfigChanged,
)
from opendots.signal.core.messages import AttackStatus, ConflictCause, ConflictStatus, Request, Response, Status
from opendots.signal.core.policy import Redirection, ServerSettings
from opendots.signal.core.server import SignalServer
from opendots.signal.core.sessionconfig import Limits, ParameterSet, SessionConfig

__all__ = [
    "AliasDirectory",
    "AttackStatus",
    "ConflictCause",
    "ConflictStatus",
    "Decision",
    "Event",
    "HeartbeatDue",
    "Limits",
    "MitigationActivated",
    "MitigationChanged",
    "MitigationExpired",
    "MitigationUpdated",
    "MitigationWithdrawn",
    "ParameterSet",
    "PeerBack",
    "PeerLost",
    "Redirection",
    "RedirectionChanged",
    "Request",
    "Response",
    "ServerSettings",
    "SessionConfig",
    "SessionConfigChanged",
    "SignalServer",
    "StaticAliasDirectory",
    "Status",
    "Targets",
]
