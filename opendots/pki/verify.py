"""Why a peer's certificate was refused, in words an operator can act on, and a rate-limited log of refusals.

OpenSSL ends a failed handshake with "certificate verify failed" whatever the reason; the transport's verify
callbacks call `explain` while the failing certificate is still at hand and keep its answer for the error it
reports, and `note_refused` logs handshakes that failed without flooding the log under a storm of them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

# X509_V_ERR_* codes (openssl/x509_vfy.h) and what each means for a DOTS operator.
_REASONS = {
    2: "was not issued by the CA of [tls] ca (its issuer certificate is unknown)",
    7: "has a signature that does not verify",
    18: "is self-signed, not issued by the CA of [tls] ca",
    19: "chains to a self-signed certificate that is not the CA of [tls] ca",
    20: "was not issued by the CA of [tls] ca",
    21: "was not issued by the CA of [tls] ca",
    24: "is issued by a certificate that may not act as a CA",
    26: "may not be used for this purpose (extended key usage)",
}


def _subject(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name) for name in extension.get_values_for_type(x509.DNSName)] + [
        str(address) for address in extension.get_values_for_type(x509.IPAddress)
    ]


def explain(
    certificate: x509.Certificate,
    errno: int,
    role: str = "server",
    expected_name: str | None = None,
    now: float | None = None,
    name_source: str | None = None,
) -> str:
    """One sentence: which check the ROLE's CERTIFICATE failed (OpenSSL's ERRNO, 0 when only the name check
    failed) and what was expected instead; NAME_SOURCE says where EXPECTED_NAME came from (the configured
    server_name, a `[[providers]]` name, an RFC 8973 discovery source), so the operator knows what to fix."""
    subject = f"the {role} certificate {_subject(certificate)!r}"
    moment = dt.datetime.fromtimestamp(now if now is not None else time.time(), dt.UTC)
    if errno == 10 or (errno == 0 and certificate.not_valid_after_utc < moment):
        return (
            f"{subject} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (now {moment:%Y-%m-%d %H:%M})"
        )
    if errno == 9:
        return f"{subject} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if errno in _REASONS:
        return f"{subject} {_REASONS[errno]}"
    if errno == 0 and expected_name is not None:
        origin = f" ({name_source})" if name_source else ""
        return f"{subject} names {', '.join(_names(certificate)) or 'nothing'}, not {expected_name!r}{origin}"
    return f"{subject} failed verification (OpenSSL error {errno})"


class _Refusals:
    """At most one log line per INTERVAL seconds; the lines in between are counted, not lost."""

    INTERVAL = 10.0

    def __init__(self) -> None:
        self.last = float("-inf")
        self.suppressed = 0

    def note(self, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self.last < self.INTERVAL:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.warning("refused a DTLS handshake: %s%s", reason, more)
        self.last, self.suppressed = now, 0


_refusals = _Refusals()


def note_refused(reason: str, now: float | None = None) -> None:
    """Log a handshake the server refused (rate-limited: a scan or a misconfigured fleet must not flood the log)."""
    _refusals.note(reason, now)


class HandshakeNotes:
    """Kept on an OpenSSL connection (app data) while it handshakes: who the peer is, and why its certificate
    was refused once a verify callback found out."""

    __slots__ = ("peer", "peer_role", "reason")

    def __init__(self, peer_role: str) -> None:
        self.peer_role = peer_role
        self.reason: str | None = None
        self.peer: str | None = None  # the peer's address, for the server's log of refused handshakes


def peer_label(address: tuple | list | str) -> str:
    """A socket address as an operator writes it: 192.0.2.1:4646, [2001:db8::1]:4646."""
    if not isinstance(address, tuple | list) or len(address) < 2:
        return str(address)
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


_ALERTS_ABOUT_US = ("unknown ca", "bad certificate", "certificate expired", "certificate unknown")


def handshake_failure(notes: HandshakeNotes | None, openssl_reason: str) -> str:
    """The reason a failed handshake reports: the verify callback's explanation when there is one; an alert from
    the peer about our own certificate said as such; else OpenSSL's words. Server side, the refusal is logged."""
    if notes is not None and notes.reason is not None:
        reason = f"{notes.reason} ({openssl_reason})"
    elif "alert" in openssl_reason and any(word in openssl_reason for word in _ALERTS_ABOUT_US):
        ours = "this client's" if notes is None or notes.peer_role == "server" else "this server's"
        reason = (
            f"the peer refused {ours} certificate ({openssl_reason}): is [tls] cert issued by the CA it trusts, "
            "and still valid?"
        )
    elif "alert" in openssl_reason and notes is not None and notes.peer_role == "client":
        # A client whose own check of our certificate failed (e.g. its server_name is not among our names) ends
        # the handshake with an alert that does not say so (OpenSSL sends "internal error").
        reason = (
            f"the client ended it ({openssl_reason}): does it trust this server's CA, and is its server_name one "
            "of the names in [tls] cert?"
        )
    else:
        reason = openssl_reason
    if notes is not None and notes.peer_role == "client":
        note_refused(f"from {notes.peer}: {reason}" if notes.peer else reason)
    return reason
