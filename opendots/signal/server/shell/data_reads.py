"""The data channel's entries a signal decision reads (RFC 8783 aliases a mitigation request names, RFC 9133 ACLs
its 'acl-list' names or its answer shows), fetched off the event loop before the decision when the data channel's
store is remote (PostgreSQL: each read is a network round trip that may wait up to the store's timeout).

The signal core reads synchronously while it decides (AliasDirectory, AclActivationControl), and every other
client's heartbeats and requests wait for the loop meanwhile. So the shell reads what the request will need first,
in a worker thread and before the service's decision lock (nobody waits behind a stalled read but its own
request); the decision then reads from that snapshot. A store that does not answer gets the request a 5.03 with the
store's diagnostic, nothing decided. A read the snapshot does not hold (what the request could not name in
advance) still goes to the store, and is counted in `unfetched`.

Notifications read too: a mitigation's RFC 9133 'acl-list' is shown with the activation types as they are now, for
every observer of the client's mitigations. The service reads those ACLs for a whole batch of events at once
(`notification_keys`, one worker-thread read) before it notifies, so a client's notifications never hold the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from opendots.model import ModelError
from opendots.model.codec import cbor_to_json, load_cbor
from opendots.signal.server.core.events import Event, MitigationChanged
from opendots.signal.server.core.messages import Rejected, Request
from opendots.signal.server.core.paths import MitigatePath, parse_path
from opendots.signal.server.core.scope import ACL_LIST
from opendots.store.data_records import StoredEntry

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # ("alias" | "acl", cuid, name)
Fetched = dict[Key, "StoredEntry | None"]


class EntryReader(Protocol):
    def get_alias(self, cuid: str, name: str, now: float) -> StoredEntry | None: ...

    def get_acl(self, cuid: str, name: str, now: float) -> StoredEntry | None: ...


class DataReads:
    """The data channel store's reads as the signal side makes them: `get_alias` and `get_acl` answer from the
    snapshot `fetch` took for the decision in progress (`using`), else from the store."""

    def __init__(self, store: EntryReader) -> None:
        self.store = store
        self.remote = bool(getattr(store, "remote", False))
        self._held: Fetched = {}
        self.unfetched = 0
        """Reads made on the caller's thread while the store is remote (the request did not name them)."""

    def get_alias(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        return self._read(("alias", cuid, name), now)

    def get_acl(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        return self._read(("acl", cuid, name), now)

    def _read(self, key: Key, now: float) -> StoredEntry | None:
        if key in self._held:
            return self._held[key]
        if self.remote:
            self.unfetched += 1
        kind, cuid, name = key
        return self.store.get_alias(cuid, name, now) if kind == "alias" else self.store.get_acl(cuid, name, now)

    async def fetch(self, keys: set[Key], now: float) -> Fetched:
        """KEYS read in a worker thread (a remote store only: a local one answers in place when asked). Raises what
        the store raises (StoreError, StoreUnavailable) when it cannot answer."""
        if not self.remote or not keys:
            return {}

        def read() -> dict[Key, StoredEntry | None]:
            return {
                key: (self.store.get_alias if key[0] == "alias" else self.store.get_acl)(*key[1:], now) for key in keys
            }

        return await asyncio.to_thread(read)

    @contextlib.contextmanager
    def using(self, fetched: Fetched) -> Iterator[None]:
        """FETCHED is what the decision taken inside reads (the caller holds the decision lock)."""
        self._held = fetched
        try:
            yield
        finally:
            self._held = {}


def request_keys(request: Request, acl_names_held: Callable[[str, int | None], set[tuple[str, str]]]) -> set[Key]:
    """What deciding REQUEST reads of the data channel: the aliases its body names wherever they are (a mitigation
    request's scope, RFC 9244 telemetry baselines and targets) under its peer's cuid; the ACLs a mitigation
    request's 'acl-list' names, under its peer's and its Uri-Path cuid; for a GET of /mitigate the ACLs the answer
    shows (ACL_NAMES_HELD(cuid, mid): the (cuid, name) pairs of the held mitigations' 'acl-list's)."""
    if request.peer is None or request.path[:1] not in _READING:
        return set()
    cuid = _path_cuid(request)
    if request.method == "GET":
        if request.path[0] != "mitigate" or cuid is None:
            return set()
        mid = _path_mid(request)
        return {("acl", c, name) for held, name in acl_names_held(cuid, mid) for c in (held, request.peer)}
    if request.method not in ("PUT", "POST") or (request.payload is None and request.body is None):
        return set()
    try:
        # Not validated here (the core does when it decides): only names are picked out.
        body = request.body if request.payload is None else cbor_to_json(load_cbor(request.payload))[0]
    except (ModelError, ValueError, TypeError):
        return set()  # the core refuses it without reading anything
    keys: set[Key] = {("alias", request.peer, name) for name in alias_names(body)}
    if request.path[0] == "mitigate":
        names = {item.get("acl-name") for item in _members(body, ACL_LIST.rpartition(":")[2]) if isinstance(item, dict)}
        owners = {request.peer, *((cuid,) if cuid is not None else ())}
        keys |= {("acl", owner, name) for owner in owners for name in names if isinstance(name, str)}
    return keys


def notification_keys(
    events: Iterable[Event], observed: Callable[[str], bool], shown: Callable[[str, str], set[tuple[str, str]]]
) -> set[Key]:
    """What notifying EVENTS reads of the data channel: for each mitigation change of a client with observers
    (OBSERVED(client)), the ACLs its cuid's mitigations show (SHOWN(client, cuid): SignalServer.acls_shown)."""
    keys: set[Key] = set()
    for cuid_of in {(e.client, e.cuid) for e in events if isinstance(e, MitigationChanged) and observed(e.client)}:
        keys.update(("acl", cuid, name) for cuid, name in shown(*cuid_of))
    return keys


_READING = {("mitigate",), ("tm-setup",), ("tm",)}


def _path_cuid(request: Request) -> str | None:
    try:
        path = parse_path(request.path)
    except Rejected:
        return None
    return getattr(path, "cuid", None)


def _path_mid(request: Request) -> int | None:
    path = parse_path(request.path)
    return path.mid if isinstance(path, MitigatePath) else None


def alias_names(body: object) -> set[str]:
    """The alias names BODY (a request, a stored mitigation request) names anywhere."""
    return {name for name in _members(body, "alias-name") if isinstance(name, str)}


def _members(body: object, member: str) -> list[object]:
    """The items of every list under a member named MEMBER (with or without a module prefix), anywhere in BODY."""
    found: list[object] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.rpartition(":")[2] == member and isinstance(value, list):
                    found += value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def diagnostic(problem: Exception) -> str:
    return f"the data channel's store did not answer: {problem}"
