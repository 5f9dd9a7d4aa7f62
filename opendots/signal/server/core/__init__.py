"""Sans-I/O DOTS signal-channel server core (RFC 9132): no sockets, no clocks, no database.

Feed `SignalServer.handle(Request, now)` with requests (CBOR payloads are decoded here); it returns a `Decision`:
the response, the changes to store, the events to act on. The shell stores the changes, then calls
`SignalServer.apply(decision)` (`opendots.signal.server.shell.durable.settle` does both). Call `handle_timer(now)` when
`next_timer()` is due.
"""

from opendots.domain import Targets
from opendots.signal.server.core.authorization import AliasDirectory, StaticAliasDirectory
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import (
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
from opendots.signal.server.core.messages import AttackStatus, ConflictCause, ConflictStatus, Request, Response, Status
from opendots.signal.server.core.policy import Redirection, ServerSettings
from opendots.signal.server.core.robust import RobustTransmission
from opendots.signal.server.core.server import SignalServer
from opendots.signal.server.core.sessionconfig import Limits, ParameterSet, SessionConfig

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
    "RobustTransmission",
    "ServerSettings",
    "SessionConfig",
    "SessionConfigChanged",
    "SignalServer",
    "StaticAliasDirectory",
    "Status",
    "Targets",
]
