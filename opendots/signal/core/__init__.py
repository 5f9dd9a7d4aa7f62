"""Sans-I/O DOTS signal-channel server core (RFC 9132): no sockets, no clocks, no CBOR.

Feed `SignalServer.handle(Request, now)` with YANG-JSON bodies; act on the returned events; call
`handle_timer(now)` when `next_timer()` is due.
"""

from opendots.domain import Targets
from opendots.signal.core.authorization import AliasDirectory, StaticAliasDirectory
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
from opendots.signal.core.server import Redirection, ServerSettings, SignalServer
from opendots.signal.core.sessionconfig import Limits, ParameterSet, SessionConfig

__all__ = [
    "AliasDirectory",
    "AttackStatus",
    "ConflictCause",
    "ConflictStatus",
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
