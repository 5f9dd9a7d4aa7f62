"""Session lifecycle events a signal-channel server reports (DTLS and TLS alike)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from opendots.transport.identity import PeerIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionEvent:
    kind: Literal["established", "closed"]
    remote: Any
    """The aiocoap remote of the session: `msg.remote = event.remote` sends over it (while it is open)."""
    identity: PeerIdentity | None
    """The peer's authenticated certificate (None only for a TLS connection that never showed one)."""
    transport: Literal["dtls", "tls"]
    reason: str | None = None
    """Why a session closed: close_notify, idle expiry, fatal alert, replaced by a new handshake, ..."""


SessionListener = Callable[[SessionEvent], None]


def notify(listeners: list[SessionListener], event: SessionEvent) -> None:
    """Tell every listener; one failing listener must not stop the transport or the others."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception(
                "session listener %s failed on %s",
                getattr(listener, "__qualname__", type(listener).__name__),
                event.kind,
            )
