"""`ssl` contexts for CoAP over TLS (RFC 8323) with the RFC 9132 §7 profile and mutual X.509."""

from __future__ import annotations

import ssl
from typing import Any

from opendots.config import TlsFiles
from opendots.transport.profile import CIPHER_LIST, COAP_TLS_ALPN


def _apply_profile(context: ssl.SSLContext, credentials: TlsFiles) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHER_LIST)  # TLS 1.2 suites; every TLS 1.3 suite is AEAD with (EC)DHE already
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(str(credentials.cert), str(credentials.key))
    context.load_verify_locations(cafile=str(credentials.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols([COAP_TLS_ALPN])


def tls_server_context(credentials: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_profile(context, credentials)
    return context


class _PinnedNameContext(ssl.SSLContext):
    """Checks the server certificate against a configured name even when we connect to an IP address.

    asyncio passes the URI host as `server_hostname`; DOTS clients often dial an address while the certificate
    names the server (RFC 9132 §8), so the name to check (and send as SNI) is fixed here.
    """

    pinned_server_name: str

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False, server_hostname: Any = None,
                 session: Any = None) -> ssl.SSLObject:  # fmt: skip
        return super().wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=self.pinned_server_name, session=session
        )


def tls_client_context(credentials: TlsFiles, server_name: str) -> ssl.SSLContext:
    context = _PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.pinned_server_name = server_name
    _apply_profile(context, credentials)
    context.check_hostname = True
    return context
