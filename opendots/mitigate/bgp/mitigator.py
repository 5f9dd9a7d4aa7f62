"""BgpMitigator: the Mitigator protocol on top of a BGP speaker (RTBH and/or FlowSpec)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from opendots.mitigate.base import Counters, MitigationScope, MitigatorError
from opendots.mitigate.bgp.routes import RouteChanges, RoutePolicy, RouteTable, routes_for_scope
from opendots.mitigate.bgp.speaker import ESTABLISHED, BgpSpeaker

log = logging.getLogger(__name__)


class BgpMitigator:
    """Announces the routes of every active mitigation through SPEAKER, and withdraws them when it ends.

    The mitigator owns the speaker's lifecycle (start/stop/restart_speaker). Neither GoBGP nor ExaBGP keeps
    API-injected routes across its own restart, so after a restart the caller passes the active mitigations
    (from its database) to restore(). BGP cannot count what the routers drop: counters() never claims numbers.
    """

    def __init__(self, speaker: BgpSpeaker, policy: RoutePolicy | None = None) -> None:
        self.speaker = speaker
        self.policy = policy or RoutePolicy()
        self.name = f"bgp-{self.policy.mode}-{speaker.name}"
        self._table = RouteTable()
        self._lock = asyncio.Lock()  # one route change at a time keeps the table and the speaker in step

    async def start(self) -> None:
        await self.speaker.start()

    async def stop(self) -> None:
        """Stop the speaker. Its sessions drop, so the peers remove every route we announced."""
        async with self._lock:
            await self.speaker.stop()
            self.speaker.cleanup()
            self._table.clear()

    async def __aenter__(self) -> BgpMitigator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def apply(self, scope: MitigationScope) -> None:
        routes = routes_for_scope(scope, self.policy)  # MitigatorError for a scope BGP cannot enforce
        async with self._lock:
            previous = self._table.by_key.get(scope.key, frozenset())
            changes = self._table.set(scope.key, routes)
            try:
                await self._push(changes)
            except MitigatorError:
                # Put the table back as it was and undo what may have reached the speaker.
                undo = self._table.set(scope.key, previous)
                try:
                    await self._push(undo)
                except MitigatorError as error:
                    log.error("%s: could not undo a failed change: %s", scope.key, error)
                raise

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        async with self._lock:
            previous = self._table.by_key.get(key, frozenset())
            changes = self._table.remove(key)
            try:
                await self._push(changes)
            except MitigatorError:
                self._table.set(key, previous)
                raise

    async def _push(self, changes: RouteChanges) -> None:
        # Announce before withdrawing, so an update never leaves a gap in enforcement.
        if changes.announce:
            await self.speaker.announce(changes.announce)
        if changes.withdraw:
            await self.speaker.withdraw(changes.withdraw)

    async def restore(self, scopes: Iterable[MitigationScope]) -> list[str]:
        """Make the speaker announce exactly the routes of SCOPES (e.g. after a restart); returns keys that failed.

        Starts the speaker if it is not running. A scope that can no longer be enforced is skipped and reported,
        so one bad record cannot keep every other mitigation down.
        """
        failed: list[str] = []
        async with self._lock:
            if not self.speaker.running:
                await self.speaker.start()
            stale = self._table.routes()
            self._table.clear()
            for scope in scopes:
                try:
                    self._table.set(scope.key, routes_for_scope(scope, self.policy))
                except MitigatorError as error:
                    log.error("restore: %s", error)
                    failed.append(scope.key)
            wanted = self._table.routes()
            await self.speaker.announce(wanted)
            keep = set(wanted)
            leftovers = [route for route in stale if route not in keep]
            if leftovers:
                await self.speaker.withdraw(leftovers)
        return failed

    async def restart_speaker(self, scopes: Iterable[MitigationScope]) -> list[str]:
        """Restart the speaker process and re-announce SCOPES."""
        async with self._lock:
            await self.speaker.stop()
            self._table.clear()
        return await self.restore(scopes)

    async def ensure_running(self, active_scopes: Callable[[], Iterable[MitigationScope]]) -> bool:
        """Restart a speaker that died and re-announce ACTIVE_SCOPES() (read at that moment, e.g. from the database).

        Meant to be called periodically by the server; returns True when it had to restart the speaker.
        """
        if self.speaker.running:
            return False
        log.error("%s: speaker not running; restarting it and restoring the active mitigations", self.name)
        failed = await self.restart_speaker(active_scopes())
        if failed:
            log.error("%s: could not restore %s", self.name, ", ".join(failed))
        return True

    async def counters(self, key: str) -> Counters:
        return Counters()

    async def health(self) -> bool:
        """True when the speaker runs and every configured BGP session is established."""
        states = await self.session_states()
        return bool(states) and all(state == ESTABLISHED for state in states.values())

    async def session_states(self) -> dict[str, str]:
        if not self.speaker.running:
            return {}
        try:
            return await self.speaker.session_states()
        except MitigatorError as error:
            log.warning("%s: cannot read session states: %s", self.name, error)
            return {}

    def active_keys(self) -> list[str]:
        return sorted(self._table.by_key)
