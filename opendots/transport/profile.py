"""The RFC 9132 §7 TLS/DTLS profile: protocol versions, cipher suites and record sizes, shared by DTLS and TLS."""

from __future__ import annotations

import ipaddress

from cryptography import x509

# RFC 9132 §7: TLS/DTLS 1.2 or later, AEAD ciphers with forward secrecy only (RFC 7525 / BCP 195).
# The mandatory-to-implement suite for DOTS (ECDHE-ECDSA-AES128-GCM-SHA256, RFC 9132 §7 item 3) comes first.
CIPHER_SUITES_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
CIPHER_LIST = ":".join(CIPHER_SUITES_TLS12)

DTLS1_2_VERSION = 0xFEFD  # OpenSSL's wire value; pyOpenSSL exports no constant for it

# IPv6 minimum MTU minus IPv6 (40) and UDP (8) headers: a DTLS datagram of this size is never fragmented
# by IP on any IPv6 path, and fits every realistic IPv4 path.
DEFAULT_DTLS_MTU = 1280 - 40 - 8

# What ALPN-less CoAP over TLS uses; RFC 8323 §4.1 registers "coap" for TLS.
COAP_TLS_ALPN = "coap"


class CertificateNameMismatch(Exception):
    """The peer's certificate does not name the host we meant to reach."""


def certificate_matches_name(certificate: x509.Certificate, server_name: str) -> bool:
    """RFC 6125 name check: an IP literal against iPAddress SANs, a DNS name against dNSName SANs (one wildcard label).

    The subject CN is deliberately not consulted (RFC 6125 §6.4.4: ignore CN when SANs exist; DOTS certificates
    carry SANs, RFC 9132 §8).
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        wanted_ip = ipaddress.ip_address(server_name.strip("[]"))
    except ValueError:
        wanted_ip = None
    if wanted_ip is not None:
        return wanted_ip in san.get_values_for_type(x509.IPAddress)
    wanted = server_name.rstrip(".").lower()
    for pattern in san.get_values_for_type(x509.DNSName):
        pattern = pattern.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            head, tail = wanted.split(".", 1)
            if head and tail == pattern[2:]:
                return True
    return False
