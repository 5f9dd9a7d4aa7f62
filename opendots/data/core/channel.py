"""The data channel core (RFC 8783 over RFC 8040), sans I/O: a parsed request and `now` in, a response out.

The HTTPS shell (opendots.data.shell) only moves bytes and extracts the peer's CUID from its certificate. Every
write is computed in memory, validated by yangson and the policy checks, and returned as one change set with the
response; the shell commits it as one transaction before it sends the response (off the loop when it is large):
a refused request never changes stored state, and nothing is acknowledged before it is stored. The core reads
the store; it never writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opendots.data.core.base import LIST_OF
from opendots.data.core.body import Prepared, parse_body
from opendots.data.core.editing import Editing
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import (
    MEDIA_TYPE,
    METHODS,
    WRITE_METHODS,
    Actor,
    RestconfRequest,
    RestconfResponse,
    accepts_json,
)
from opendots.data.core.paths import DataPath, parse_data_path
from opendots.data.core.query import QueryParameters, parse_query
from opendots.data.core.vendor_mapping import MAPPING_KINDS, VendorMappings
from opendots.model.data_channel import MODULE
from opendots.model.vendor_mapping import MAPPING
from opendots.store.data_records import Changes


class DataChannelCore(Editing, VendorMappings):
    """The RESTCONF core: `decide` answers a request and returns the change set to commit with the response;
    `handle` also commits it (for callers that may block on the store)."""

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call LISTENER(cuid) after every change to that client's data (e.g. to re-apply its immediate ACLs)."""
        self._listeners.append(listener)

    def set_acl_activation(
        self, cuid: str, name: str, activation_type: str, now: float, refresh_lifetime: bool = False
    ) -> bool:
        """Change an ACL's activation type from outside RESTCONF (RFC 9133 signal-channel control).

        False if the client has no such ACL. REFRESH_LIFETIME restarts the ACL's lifetime as a data-channel
        refresh would (RFC 9133 §3.2.1 asks it of signal-channel control).
        """
        expires = self.acl_activation_expiry(activation_type, now, refresh_lifetime)
        if not self.store.set_acl_activation(cuid, name, activation_type, expires, now):
            return False
        self.client_changed(cuid)
        return True

    def acl_activation_expiry(self, activation_type: str, now: float, refresh_lifetime: bool) -> float | None:
        """`set_acl_activation`'s checks and the expiry it stores, for a caller that writes the store itself (in a
        worker thread) and then calls `client_changed`."""
        if activation_type not in ("activate-when-mitigating", "immediate", "deactivate"):
            raise ValueError(f"unknown activation type {activation_type!r}")
        return now + self.settings.lifetime if refresh_lifetime else None

    def client_changed(self, cuid: str) -> None:
        """CUID's data changed outside a RESTCONF request: tell the listeners (on the caller's thread)."""
        for listener in self._listeners:
            listener(cuid)

    # ---- entry point -------------------------------------------------------------------------------------

    def decide(self, request: RestconfRequest, now: float, prepared: Prepared | None = None) -> RestconfResponse:
        """Answer REQUEST without writing: a successful write's response carries the change set to commit before
        it is sent (then call `committed`). PREPARED: its body parsed and entries validated off the loop by the
        shell; with one, the core raises NeedsValidation (before deciding) for validation beyond
        PREPARED.inline_bytes."""
        self._prepared = prepared if prepared is not None else Prepared(inline_bytes=None)
        self._changes = None
        try:
            response = self._handle(request, now)
        except RestconfError as error:
            return RestconfResponse(error.status, error.body())
        finally:
            changes, self._changes = self._changes, None
        if request.method in WRITE_METHODS and response.status < 300:
            response.changes = changes
            body = self._prepared.body if isinstance(self._prepared.body, dict) else None
            response.changed_cuid = _changed_cuid(request.path, body, request.peer_cuid)
        return response

    def committed(self, response: RestconfResponse) -> None:
        """RESPONSE's changes are stored: tell the listeners whose client changed."""
        if response.changed_cuid is not None:
            for listener in self._listeners:
                listener(response.changed_cuid)

    def handle(self, request: RestconfRequest, now: float, prepared: Prepared | None = None) -> RestconfResponse:
        """`decide`, then commit its changes on this thread and tell the listeners."""
        response = self.decide(request, now, prepared)
        if response.changes is not None:
            self.store.apply(response.changes, now)
        self.committed(response)
        return response

    def _handle(self, request: RestconfRequest, now: float) -> RestconfResponse:
        self._now = now
        peer = self.authorize(request.peer_cuid)
        if peer is None:
            raise RestconfError("access-denied", "this client certificate is not authorized", error_type="protocol")
        self._check_loop(request.via)
        if not accepts_json(request.accept):
            raise RestconfError(
                "invalid-value", f"only {MEDIA_TYPE} responses are available", status=406, error_type="protocol"
            )
        if request.method not in METHODS:
            raise RestconfError("operation-not-supported", f"method {request.method} is not supported")
        query = parse_query(request.method, request.query)
        path = parse_data_path(request.path)
        actor = Actor(peer, request.peer_cuid, peer.gateway or request.peer_cuid in self.settings.gateways)
        if request.method == "OPTIONS":
            return RestconfResponse(200, headers={"Allow": ", ".join(METHODS), "Accept-Patch": MEDIA_TYPE})
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            if self._prepared.body is None:
                self._prepared.body = parse_body(request.method, request.content_type, request.body)
            elif isinstance(self._prepared.body, RestconfError):
                raise self._prepared.body
            body = self._prepared.body
        elif request.body.strip():
            raise RestconfError("invalid-value", f"{request.method} takes no message body", error_type="protocol")
        method = "GET" if request.method == "HEAD" else request.method
        if path.kind in MAPPING_KINDS or (method == "POST" and path.kind == "client" and _is_mapping(body)):
            return self._mapping(method, path, actor, query, body)
        handler = getattr(self, f"_{method.lower()}")
        return handler(path, actor, query, body, now)

    def _check_loop(self, via: str | None) -> None:
        if not via:
            return
        hops = [hop.strip().split() for hop in via.split(",")]
        if any(len(hop) > 1 and hop[1].split(":")[0] == self.settings.server_id for hop in hops):
            raise RestconfError(
                "operation-failed",
                "an infinite loop has been detected when forwarding a request via a proxy",
                status=508,
                error_type="transport",
                app_tag="loop-detected",
                info={"via-header": via},
            )

    # ---- DELETE --------------------------------------------------------------------------------------------

    def _delete(self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        if path.kind in ("datastore", "dots-data", "capabilities"):
            raise RestconfError("operation-not-supported", f"DELETE is not allowed on {path.kind}")
        if path.kind == "client":
            if path.inner:
                raise RestconfError("operation-not-supported", "the client's key cannot be deleted")
            client = self._client(path, actor)
            self._commit(Changes(client.cuid, unregister=True))  # §5.2: its aliases and ACLs go too
            return RestconfResponse(204)
        client = self._client(path, actor)
        if path.kind in LIST_OF:
            changes = Changes(client.cuid, clear_aliases=path.kind == "aliases", clear_acls=path.kind == "acls")
            self._commit(changes)
            return RestconfResponse(204)
        container = "aliases" if path.kind == "alias" else "acls"
        if path.inner:
            self._edit_inner(client, actor, path, query, None, now, "DELETE")
            return RestconfResponse(204)
        self._entry(container, client.cuid, path.name, now)
        changes = Changes(client.cuid)
        (changes.alias_deletes if container == "aliases" else changes.acl_deletes).append(path.name or "")
        self._commit(changes)
        return RestconfResponse(204)


def _changed_cuid(path: str, body: dict[str, Any] | None, peer_cuid: str) -> str:
    """The client a successful write changed: the path's dots-client, or the one a registration names."""
    try:
        data_path = parse_data_path(path)
    except RestconfError:
        return peer_cuid
    if data_path.cuid is not None:
        return data_path.cuid
    try:
        return body[f"{MODULE}:dots-client"][0]["cuid"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return peer_cuid


def _is_mapping(body: Any) -> bool:
    """A POST on a dots-client installing its vendor attack mapping (RFC 9244 Figure 30)."""
    return isinstance(body, dict) and MAPPING in body
