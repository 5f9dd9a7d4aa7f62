"""CoAP transports for the DOTS signal channel: DTLS (pyOpenSSL) and TLS (RFC 8323, aiocoap).

Every non-public aiocoap name used by OpenDOTS is confined to `opendots.transport.aiocoap_hooks`.
"""

from opendots.transport.endpoints import (
    SignalServerEndpoint,
    create_client_context,
    peer_identity,
    ping,
    resolve_remote,
    start_server,
)
from opendots.transport.identity import PeerIdentity

__all__ = [
    "PeerIdentity",
    "SignalServerEndpoint",
    "create_client_context",
    "peer_identity",
    "ping",
    "resolve_remote",
    "start_server",
]
