"""What the engine hands back to its shell. Plain data: the shell turns each into a CoAP message or an upcall.

PEER and KEY are whatever hashable values the shell chose to identify a remote endpoint and a transfer; TOKEN is the
CoAP token the engine was given with a message, carried back so the shell can answer on the right exchange.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from opendots.transport.qblock.options import BlockOption


@dataclass(frozen=True)
class SendBlock:
    """Send one payload of a body: a request carrying Q-Block1 (a fresh token, same Request-Tag and Size1) or a
    response carrying Q-Block2 on TOKEN (same ETag and Size2). RECOVERY marks a Q-Block2 block sent in answer to a
    request for missing blocks: it goes out without Observe (RFC 9177 §4.5)."""

    option: BlockOption
    payload: bytes
    size: int  # Size1 / Size2: the whole body
    token: bytes | None = None
    recovery: bool = False
    peer: Hashable = None
    key: Hashable = None
    confirmable: bool = False  # a Q-Block2 block of a body asked for by a CON request: it goes CON (RFC 9177 §4.4)


@dataclass(frozen=True)
class Respond:
    """A response to a Q-Block1 request: 2.31 Continue (OPTION echoes the last block of the set), 4.08 with a
    missing-blocks PAYLOAD (Content-Format 272), or a refusal (4.00, 4.13 with SIZE1 the largest body, 5.03)."""

    peer: Hashable
    token: bytes
    code: str
    payload: bytes = b""
    content_format: int | None = None
    option: BlockOption | None = None
    size1: int | None = None
    diagnostic: str = ""
    key: Hashable = None  # a 4.08 listing missing blocks: the body it is about (an RST to it ends that body, §4.3)


@dataclass(frozen=True)
class RequestBlocks:
    """Ask the server for blocks of response KEY: a new request (new token, no ETag, no Observe) carrying these
    Q-Block2 options, ascending; a single `n/M` with n a multiple of MAX_PAYLOADS is the 'Continue' (§4.4)."""

    key: Hashable
    options: tuple[BlockOption, ...]
    continue_: bool = False


@dataclass(frozen=True)
class BodyComplete:
    """A whole body arrived. For Q-Block1 the shell processes the request and answers on TOKEN (the last one
    received, RFC 9177 §4.3); TAG is the Request-Tag (Q-Block1) or the ETag (Q-Block2)."""

    peer: Hashable
    key: Hashable
    tag: bytes
    body: bytes
    token: bytes | None = None


@dataclass(frozen=True)
class AlreadyComplete:
    """A block of a body already delivered arrived again (its answer was lost): repeat that answer on TOKEN."""

    peer: Hashable
    key: Hashable
    token: bytes


@dataclass(frozen=True)
class BodyAbandoned:
    """A body given up: partial and silent for too long, NON_MAX_RETRANSMIT re-requests unanswered, evicted by a
    newer body of the same peer, or replaced by a new ETag (REPLACED: the old ETag; the payload that replaced it
    starts the new body). REASON says which, for logs and metrics."""

    peer: Hashable
    key: Hashable
    reason: str
    replaced: bytes | None = None


@dataclass(frozen=True)
class Rejected:
    """A message the engine dropped without answering (e.g. a malformed 4.08, a lying Q-Block2 response)."""

    key: Hashable
    reason: str
