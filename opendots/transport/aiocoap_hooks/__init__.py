"""Every non-public aiocoap (0.4.17) name OpenDOTS relies on, in one package.

aiocoap's public API covers messages, resources and `Context.request`, but not plugging in a transport of one's
own, giving TLS clients a certificate, reading the TLS peer certificate or sending a CoAP ping. Each helper says
which private name it touches and why; tests/contract/test_aiocoap_hooks.py checks every one of them, so an
aiocoap upgrade that moves one fails there with a clear message instead of somewhere deep in a handshake, and
tests/unit/transport/test_aiocoap_private_names.py fails when a module outside this package touches one.

By concern: `token_layer` (incoming requests and our own single-response requests without reference cycles),
`message_layer` (deduplication, the Q-Block engines' attachment, the stack of a DTLS interface, CoAP ping),
`context` (answering on the spot, block-wise serving, shutdown races), `lean` (the DTLS server's lean path for
plain requests), `tls` (CoAP over TLS, RFC 8323).
"""

from opendots.transport.aiocoap_hooks.context import (
    PromptAnswerContext,
    block_of,
    find_request_interface,
    has_transports,
    quiet_shutdown_races,
)
from opendots.transport.aiocoap_hooks.lean import LeanAnswer, LeanPath, LeanResponse, prepared_answer
from opendots.transport.aiocoap_hooks.message_layer import (
    TimerlessDedupMessageManager,
    append_message_interface,
    find_message_manager,
    send_empty_con,
)
from opendots.transport.aiocoap_hooks.tls import (
    _tls_identity,
    append_tls_client,
    append_tls_server,
    close_idle_tls_connections,
    close_tls_connection,
    is_tls_remote,
    send_tls_ping,
    tls_connection_closed,
    tls_peer_certificate_der,
    tls_server_connection_count,
    tls_server_refused,
    tls_server_sockets,
)
from opendots.transport.aiocoap_hooks.token_layer import SingleResponse, send_single_request

__all__ = [
    "LeanAnswer",
    "LeanPath",
    "LeanResponse",
    "PromptAnswerContext",
    "SingleResponse",
    "TimerlessDedupMessageManager",
    "_tls_identity",  # tests/integration/transport/test_tls_identity_mid_handshake.py
    "append_message_interface",
    "append_tls_client",
    "append_tls_server",
    "block_of",
    "close_idle_tls_connections",
    "close_tls_connection",
    "find_message_manager",
    "find_request_interface",
    "has_transports",
    "is_tls_remote",
    "prepared_answer",
    "quiet_shutdown_races",
    "send_empty_con",
    "send_single_request",
    "send_tls_ping",
    "tls_connection_closed",
    "tls_peer_certificate_der",
    "tls_server_connection_count",
    "tls_server_refused",
    "tls_server_sockets",
]
