"""Registered numbers of the DOTS signal channel, defined once."""

from __future__ import annotations

DOTS_CBOR_CONTENT_FORMAT = 271
"""CoAP Content-Format of application/dots+cbor (RFC 9132 §10.3, §10.4). RFC 9132 §10.5 also registers CBOR tag
271 for DOTS signal objects: a different registry that happens to use the same number (opendots.model.codec)."""
