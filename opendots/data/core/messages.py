"""What goes in and out of the data channel core: a parsed RESTCONF request, and the response with the store
changes it needs (RFC 8040 over HTTPS; the shell moves the bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opendots.config import ClientAuthorization
from opendots.model.data_channel import ROOT
from opendots.store.data_records import Changes

MEDIA_TYPE = "application/yang-data+json"
RESTCONF_ROOT = "/restconf"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class RestconfRequest:
    method: str
    path: str  # percent-encoded, below {+restconf}/data
    peer_cuid: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None
    accept: str | None = None
    via: str | None = None


@dataclass
class RestconfResponse:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The one transaction a successful write needs, to be committed before the response is sent
    # (DataChannelCore.decide leaves it to the caller; DataChannelCore.handle commits it itself).
    changes: Changes | None = None
    changed_cuid: str | None = None  # the client whose data the write changes (its listeners are told)


@dataclass(frozen=True)
class Actor:
    """Who is asking (the TLS peer) and for which DOTS client (the path's cuid)."""

    peer: ClientAuthorization
    peer_cuid: str
    gateway: bool


def accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in (MEDIA_TYPE, "application/yang-data", "application/json", "*/*", "application/*"):
            return True
    return False


def location_of(suffix: str) -> str:
    return f"{RESTCONF_ROOT}/data/{ROOT}/{suffix}"
