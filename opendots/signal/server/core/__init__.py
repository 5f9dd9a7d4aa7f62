"""Sans-I/O DOTS signal-channel server core (RFC 9132): no sockets, no clocks, no database.

Feed `SignalServer.handle(Request, now)` with requests (CBOR payloads are decoded here); it returns a `Decision`:
the response, the changes to store, the events to act on. The shell stores the changes, then calls
`SignalServer.apply(decision)` (`opendots.signal.server.shell.durable.settle` does both). Call `handle_timer(now)` when
`next_timer()` is due.
"""

# The names below are imported on first use (PEP 562): importing one submodule (the client's request builders need
# `defaults`) runs this file, and importing the whole server core here would pull in the YANG model (yangson) for
# every `opendots fastnetmon-hook` call, which only talks to the agent (issue 20).
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from opendots.signal.server.core.messages import (
        AttackStatus,
        ConflictCause,
        ConflictStatus,
        Request,
        Response,
        Status,
    )
    from opendots.signal.server.core.policy import Redirection, ServerSettings
    from opendots.signal.server.core.robust import RobustTransmission
    from opendots.signal.server.core.server import SignalServer
    from opendots.signal.server.core.sessionconfig import Limits, ParameterSet, SessionConfig

_WHERE = {
    "AliasDirectory": "opendots.signal.server.core.authorization",
    "AttackStatus": "opendots.signal.server.core.messages",
    "ConflictCause": "opendots.signal.server.core.messages",
    "ConflictStatus": "opendots.signal.server.core.messages",
    "Decision": "opendots.signal.server.core.decision",
    "Event": "opendots.signal.server.core.events",
    "HeartbeatDue": "opendots.signal.server.core.events",
    "Limits": "opendots.signal.server.core.sessionconfig",
    "MitigationActivated": "opendots.signal.server.core.events",
    "MitigationChanged": "opendots.signal.server.core.events",
    "MitigationExpired": "opendots.signal.server.core.events",
    "MitigationUpdated": "opendots.signal.server.core.events",
    "MitigationWithdrawn": "opendots.signal.server.core.events",
    "ParameterSet": "opendots.signal.server.core.sessionconfig",
    "PeerBack": "opendots.signal.server.core.events",
    "PeerLost": "opendots.signal.server.core.events",
    "Redirection": "opendots.signal.server.core.policy",
    "RedirectionChanged": "opendots.signal.server.core.events",
    "Request": "opendots.signal.server.core.messages",
    "Response": "opendots.signal.server.core.messages",
    "RobustTransmission": "opendots.signal.server.core.robust",
    "ServerSettings": "opendots.signal.server.core.policy",
    "SessionConfig": "opendots.signal.server.core.sessionconfig",
    "SessionConfigChanged": "opendots.signal.server.core.events",
    "SignalServer": "opendots.signal.server.core.server",
    "StaticAliasDirectory": "opendots.signal.server.core.authorization",
    "Status": "opendots.signal.server.core.messages",
    "Targets": "opendots.domain",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
