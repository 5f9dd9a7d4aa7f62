"""Certificates for tests and labs, and the CUID derivation of RFC 9132 §4.4.1."""

from opendots.pki.cuid import cuid_from_certificate, cuid_from_spki

__all__ = ["cuid_from_certificate", "cuid_from_spki"]
