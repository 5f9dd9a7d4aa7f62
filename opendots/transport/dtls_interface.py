"""asyncio shell around the sans-I/O DTLS core, exposed to aiocoap as a CoAP message interface (coaps://).

aiocoap stacks its MessageManager (CON/ACK, message IDs, deduplication) and TokenManager (requests, Observe,
Block2) on top, so everything CoAP happens there; this module only moves datagrams, runs timers and keeps the
session table. Each session is one `DtlsRemote`, which aiocoap uses as `message.remote`: setting
`msg.remote = earlier_request.remote` sends over that peer's existing session, in either direction.

Split by concern: `dtls_remote` (the session as aiocoap's remote, shared plumbing), `dtls_server`, `dtls_client`;
this module keeps the names the rest of the code imports, and the factories aiocoap's Context is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiocoap import interfaces

from opendots.config import TlsFiles
from opendots.transport.dtls_client import HANDSHAKE_DEADLINE, DtlsClientInterface
from opendots.transport.dtls_remote import DtlsInterfaceBase, DtlsRemote
from opendots.transport.dtls_server import (
    HANDSHAKE_MIN_AGE,
    MAX_HANDSHAKES_PER_ADDRESS,
    SERVER_HANDSHAKE_TIMEOUT,
    SWEEP_INTERVAL_MAX,
    DtlsServerInterface,
    SessionStats,
)

__all__ = [
    "HANDSHAKE_DEADLINE",
    "HANDSHAKE_MIN_AGE",
    "MAX_HANDSHAKES_PER_ADDRESS",
    "SERVER_HANDSHAKE_TIMEOUT",
    "SWEEP_INTERVAL_MAX",
    "DtlsClientInterface",
    "DtlsInterfaceBase",
    "DtlsRemote",
    "DtlsServerInterface",
    "SessionStats",
    "client_interface_factory",
    "server_interface_factory",
]


def server_interface_factory(**options: Any) -> Callable[[interfaces.MessageManager], Any]:
    async def factory(message_manager: interfaces.MessageManager) -> DtlsServerInterface:
        return await DtlsServerInterface.create(message_manager, **options)

    return factory


def client_interface_factory(
    credentials: TlsFiles, server_name: str, name_source: str | None = None
) -> Callable[[interfaces.MessageManager], Any]:
    async def factory(message_manager: interfaces.MessageManager) -> DtlsClientInterface:
        return DtlsClientInterface(
            message_manager, asyncio.get_running_loop(), credentials, server_name, name_source=name_source
        )

    return factory
