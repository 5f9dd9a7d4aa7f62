"""The authenticated identity of a (D)TLS peer, as every request handler sees it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.x509.oid import NameOID

from opendots.pki.cuid import cuid_from_certificate


@dataclass(frozen=True)
class PeerIdentity:
    """A peer certificate that passed chain validation during the handshake."""

    certificate_der: bytes

    @classmethod
    def from_der(cls, der: bytes) -> PeerIdentity:
        return cls(certificate_der=der)

    def __repr__(self) -> str:  # the DER blob would drown every log line and assertion message
        return f"PeerIdentity(common_name={self.common_name!r}, cuid={self.cuid!r})"

    def __str__(self) -> str:
        """As log lines name a DOTS peer: its certificate's name and its cuid (RFC 9132 §4.4.1)."""
        return f"{self.common_name} (cuid {self.cuid})"

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    @cached_property
    def cuid(self) -> str:
        """RFC 9132 §4.4.1 client identifier derived from the certificate's public key."""
        return cuid_from_certificate(self.certificate)

    @cached_property
    def common_name(self) -> str | None:
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None

    @cached_property
    def dns_names(self) -> tuple[str, ...]:
        try:
            san = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ()
        return tuple(san.value.get_values_for_type(x509.DNSName))
