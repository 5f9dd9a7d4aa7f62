"""CUID derivation, RFC 9132 §4.4.1.

The client identifier is the SHA-256 hash of the DER-encoded SubjectPublicKeyInfo of the client
certificate, truncated to its first 16 bytes, base64url-encoded without the two trailing '=' (22 characters).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

CUID_LENGTH = 22


def cuid_from_spki(spki_der: bytes) -> str:
    digest = hashlib.sha256(spki_der).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def cuid_from_certificate(certificate: x509.Certificate | bytes) -> str:
    """CUID of a certificate given as a parsed object, DER bytes or PEM bytes."""
    if isinstance(certificate, bytes):
        if certificate.lstrip().startswith(b"-----BEGIN"):
            certificate = x509.load_pem_x509_certificate(certificate)
        else:
            certificate = x509.load_der_x509_certificate(certificate)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cuid_from_spki(spki)
