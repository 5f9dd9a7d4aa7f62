"""State and lookups every part of the data channel core shares: the store it reads, the settings, the request
being handled, and the one change set that request will need committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opendots.config import ClientAuthorization
from opendots.data.core.body import Prepared
from opendots.data.core.errors import RestconfError, not_found
from opendots.data.core.messages import Actor
from opendots.data.core.paths import DataPath
from opendots.data.core.settings import DataChannelSettings
from opendots.store.data_records import Changes, ClientRecord, DataChannelStore, StoredEntry

LIST_OF = {"aliases": "alias", "acls": "acl"}


class CoreBase:
    def __init__(
        self,
        store: DataChannelStore,
        authorize: Callable[[str], ClientAuthorization | None],
        settings: DataChannelSettings | None = None,
    ) -> None:
        self.store = store  # RESTCONF requests only read it: their writes go out as the response's change set
        self.authorize = authorize
        self.settings = settings or DataChannelSettings()
        self._listeners: list[Callable[[str], None]] = []
        self._now = 0.0  # the `now` of the request being handled
        self._prepared = Prepared(inline_bytes=None)  # the request being handled: parsed body, validated entries
        self._changes: Changes | None = None  # what the request being handled needs stored

    def _commit(self, changes: Changes) -> None:
        """Record the one transaction the request needs; the caller commits it before the answer is sent."""
        assert self._changes is None, "one transaction per request"
        self._changes = changes

    def _client(self, path: DataPath, actor: Actor) -> ClientRecord:
        """The registered client PATH names, as far as ACTOR may see it (else 404, as if it did not exist)."""
        assert path.cuid is not None
        if path.cuid != actor.peer_cuid and not actor.gateway:
            raise not_found(f"dots-client={path.cuid}")
        client = self.store.get_client(path.cuid)
        if client is None:
            raise not_found(f"dots-client={path.cuid}")
        if actor.gateway and path.cuid != actor.peer_cuid and client.cdid is None:
            # §6.1/§7.2: relayed request for a client registered without a cdid (e.g. directly, not through a
            # gateway): the gateway may not touch it.
            raise RestconfError("access-denied", f"dots-client={path.cuid} must register through this gateway first")
        return client

    def _stored(self, container: str, cuid: str, name: Any, now: float) -> StoredEntry | None:
        """CUID's live alias (CONTAINER "aliases") or ACL ("acls") NAME, if any."""
        if not isinstance(name, str):
            return None
        return self.store.get_alias(cuid, name, now) if container == "aliases" else self.store.get_acl(cuid, name, now)

    def _entries(self, container: str, cuid: str, now: float) -> list[StoredEntry]:
        return self.store.list_aliases(cuid, now) if container == "aliases" else self.store.list_acls(cuid, now)

    def _entry(self, container: str, cuid: str, name: str | None, now: float) -> StoredEntry:
        assert name is not None
        found = self._stored(container, cuid, name, now)
        if found is None:
            raise not_found(f"{LIST_OF[container]}={name}")
        return found

    def _existing(self, kind: str, cuid: str, entries: list[dict[str, Any]], now: float) -> set[str]:
        """The names among ENTRIES' that CUID already has: point reads for a few, one read of all names for many."""
        names = {name for entry in entries if isinstance(name := entry.get("name"), str)}
        if len(names) > 8:
            return self.store.entry_names(kind, cuid, now) & names  # type: ignore[operator]
        return {name for name in names if self._stored(kind, cuid, name, now) is not None}


def activation_of(acl: dict[str, Any]) -> str:
    return acl.get("activation-type", "activate-when-mitigating")
