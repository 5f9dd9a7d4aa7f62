"""A TLS connection lost in the middle of its handshake (a Happy Eyeballs loser cancelled by a CPE, RFC 9132 §4.3)
has no peer identity: the server's 'closed' session event must still go out, not a ValueError from getpeercert."""

from __future__ import annotations

import ssl

from opendots.transport.aiocoap_hooks import _tls_identity


class HandshakingTransport:
    """The one thing _tls_identity asks of an asyncio transport, over a real SSLObject whose handshake has not run."""

    def __init__(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_object = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)

    def get_extra_info(self, name: str) -> object:
        return self.ssl_object if name == "ssl_object" else None


def test_a_connection_whose_handshake_never_finished_has_no_identity_rather_than_an_error() -> None:
    assert _tls_identity(HandshakingTransport()) is None
