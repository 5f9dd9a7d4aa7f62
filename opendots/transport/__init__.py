"""CoAP transports for the DOTS signal channel: DTLS (pyOpenSSL) and TLS (RFC 8323, aiocoap).

Server::

    endpoint = await start_server(site, credentials=config.tls, bind=[("::", 4646)])  # DTLS/UDP + TLS/TCP
    # in a resource: identity = peer_identity(request)  -> PeerIdentity (cuid, common_name, ...)
    # towards that client later (heartbeat, notification): msg.remote = request.remote
    endpoint.session_listeners.append(on_session_event)  # SessionEvent: established / closed
    await endpoint.shutdown()

Client::

    context = await create_client_context(config.tls, server_name="dots.example.net", site=client_site)
    await context.request(Message(code=GET, uri="coaps://192.0.2.1:4646/...")).response  # coaps+tcp:// for TLS
    rtt = await ping(context, "coaps://192.0.2.1:4646")
    sent = await client_request(context, message, qblock_parameters=params)  # Q-Block over DTLS when the server has it

Layout: `dtls` is the sans-I/O DTLS core (cookies, handshake, records, timers), `dtls_interface` its asyncio shell
as an aiocoap message interface (in `dtls_remote`, `dtls_server`, `dtls_client`), `tls` the ssl contexts, `profile`
the RFC 9132 §7 profile, `endpoints` the public API. Every non-public aiocoap name used by OpenDOTS is confined to
`opendots.transport.aiocoap_hooks`.
"""

from opendots.transport.endpoints import (
    ClientRequest,
    SignalServerEndpoint,
    client_request,
    connection_closed,
    create_client_context,
    open_session,
    over_tls,
    peer_identity,
    ping,
    probe_qblock,
    remote_identity,
    reset_session,
    resolve_remote,
    start_server,
)
from opendots.transport.events import SessionEvent, SessionListener
from opendots.transport.identity import PeerIdentity

__all__ = [
    "ClientRequest",
    "PeerIdentity",
    "SessionEvent",
    "SessionListener",
    "SignalServerEndpoint",
    "client_request",
    "connection_closed",
    "create_client_context",
    "open_session",
    "over_tls",
    "peer_identity",
    "ping",
    "probe_qblock",
    "remote_identity",
    "reset_session",
    "resolve_remote",
    "start_server",
]
