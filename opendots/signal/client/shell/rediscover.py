"""RFC 8973 §4 in the client agent: discovery run again while a session is up (the decision is
opendots.discovery.refresh's, driven by `now`; this runs the lookups and the session move)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from opendots.discovery.refresh import Peer, Rediscovery
from opendots.signal.client.shell.connect import ConnectError, Connection, certificate_expiry

if TYPE_CHECKING:
    import aiocoap

    from opendots.discovery.cache import DiscoveryCache
    from opendots.discovery.discover import Discoverer

log = logging.getLogger("opendots.signal.client.shell.agent")  # one logger for the agent's story


class RediscoveryMixin:
    """Part of ClientAgent: the attributes below are the agent's."""

    clock: Callable[[], float]
    discovery: Discoverer | None
    discovery_cache: DiscoveryCache
    discovered_from: str | None
    rediscovery: Rediscovery
    connection: Connection | None
    context: aiocoap.Context | None
    _server_label: str
    _rediscovering: asyncio.Task[None] | None
    _replacement: tuple[aiocoap.Context, Connection] | None
    _wake: asyncio.Event

    async def _connect(
        self, *, use_cache: bool = True, transports: tuple[str, ...] | None = None
    ) -> tuple[aiocoap.Context, Connection]:
        raise NotImplementedError

    async def _arm_rediscovery(self) -> None:
        """RFC 8973 §4: a session with a discovered peer is re-checked when what found it, or the peer's
        certificate, expires; a redirection's peer (RFC 9132 §4.6) is not a discovered one."""
        connection, context = self.connection, self.context
        if self.discovery is None or self.discovered_from is None or connection is None or context is None:
            self.rediscovery.session_down()
            return
        candidate = connection.candidate
        peer = Peer(self._server_label, candidate.address, candidate.port, candidate.transport)
        expiry = await certificate_expiry(context, candidate.base_uri)
        self.rediscovery.session_up(peer, self.clock(), self.discovery_cache.expires_at(), expiry)

    def _maybe_rediscover(self) -> None:
        reason = self.rediscovery.due(self.clock())
        if reason is None or self._rediscovering is not None or self._replacement is not None:
            return
        log.info("discovering again: %s", reason)
        self.rediscovery.started()
        self._rediscovering = asyncio.create_task(self._rediscover(), name="dots-client-rediscovery")

    async def _rediscover(self) -> None:
        """Discovery again while the session is up: keep it when the answer still holds its peer, else establish
        a session with the new peer and switch to it (the old one is dropped only then; the core re-creates the
        mitigations on the new session, as on any server change)."""
        assert self.discovery is not None
        try:
            result = await self.discovery.discover()
            self.discovery_cache.store(result, self.clock())
            decision = self.rediscovery.decide(result, self.clock(), self.discovery_cache.expires_at())
            log.info("re-discovery: %s", decision.reason)
            if decision.keep:
                return
            try:
                context, connection = await self._connect(use_cache=False)
            except (ConnectError, OSError) as error:
                log.warning("re-discovery: the new DOTS server cannot be reached, keeping the session: %s", error)
                self.rediscovery.move_failed(self.clock())
                return
            log.warning("re-discovery: moving the session to %s (%s)", connection.candidate, self._server_label)
            self._replacement = (context, connection)
        finally:
            self._rediscovering = None
            self._wake.set()
