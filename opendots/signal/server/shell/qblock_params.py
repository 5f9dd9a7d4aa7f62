"""The Q-Block engine's parameters for a DOTS client's session: the RFC 9362 robust-transmission values in force
(its mitigating-config set while one of its mitigations is enforced, its idle-config set otherwise), copied field by
field so the transport's engine stays free of DOTS (opendots.transport.qblock_server)."""

from __future__ import annotations

import logging

import aiocoap

from opendots.signal.server.core import SignalServer
from opendots.signal.server.core.robust import RobustTransmission
from opendots.transport import peer_identity
from opendots.transport.qblock import QBlockParameters
from opendots.transport.qblock_server import ParametersFor

log = logging.getLogger(__name__)


def engine_parameters(robust: RobustTransmission) -> QBlockParameters:
    """RFC 9362's values as RFC 9177 §7.2's parameters (RobustTransmission.engine_values, which the client uses
    too). Raises ValueError for values the engine refuses (§7.2's MUSTs)."""
    return QBlockParameters(**robust.engine_values())


def session_parameters(core: SignalServer) -> ParametersFor:
    """For each Q-Block request: the parameters of the session of the client that sent it (None: the defaults)."""
    cache: dict[RobustTransmission, QBlockParameters | None] = {}

    def parameters_for(request: aiocoap.Message) -> QBlockParameters | None:
        identity = peer_identity(request)
        client = core.client_name(identity.cuid if identity is not None else None)
        if client is None:
            return None
        robust = core.robust_transmission(client)
        if robust not in cache:
            if len(cache) > 1024:  # distinct configurations, not requests: a bound that is never reached in practice
                cache.clear()
            try:
                cache[robust] = engine_parameters(robust)
            except ValueError as problem:
                log.warning("client %s: RFC 9362 values unusable for Q-Block (%s); using RFC 9177's", client, problem)
                cache[robust] = None
        return cache[robust]

    return parameters_for
