"""The data channel core (RFC 8783 over RFC 8040), sans I/O: a parsed request and `now` in, a response out.

The HTTP shell (server.py) only moves bytes and extracts the peer's CUID from its certificate. Every write is
computed in memory, validated by yangson and the policy checks, and only then applied to the store as one
transaction: a refused request never changes stored state.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from opendots.config import ClientAuthorization
from opendots.data import tree
from opendots.data.body import (
    PLACEHOLDER_KEY,
    PLACEHOLDER_STEP,
    NeedsValidation,
    Prepared,
    block_positions,
    memo_key,
    parse_body,
)
from opendots.data.errors import RestconfError, not_found
from opendots.data.paths import DataPath, Step, parse_data_path, parse_steps
from opendots.data.policy import DEFAULT_CAPABILITIES, check_acl, check_alias, check_capabilities
from opendots.data.query import QueryParameters, parse_query, prune_depth, select_fields
from opendots.data.records import Acl, Alias
from opendots.model.data_channel import MODULE, ROOT, ModelError, schema_node, validate_capabilities, validate_client
from opendots.store.data_channel import AclWrite, Changes, ClientRecord, DataChannelStore, StoredEntry

MEDIA_TYPE = "application/yang-data+json"
RESTCONF_ROOT = "/restconf"
MINIMUM_LIFETIME = 10080 * 60.0  # §6.1, §7.2: aliases and ACLs live at least one week without refresh
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_LIST_OF = {"aliases": "alias", "acls": "acl"}


@dataclass
class DataChannelSettings:
    capabilities: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_CAPABILITIES))
    gateways: frozenset[str] = frozenset()  # CUIDs of server-domain gateways allowed to relay for others (§3.3)
    lifetime: float = MINIMUM_LIFETIME  # seconds an alias or ACL lives without a refresh (§3.5)
    server_id: str = "opendots-data"  # our Via pseudonym, for loop detection (§3.4)
    max_entries: int = 10_000  # aliases + ACLs per client (§10 quotas)
    # §3.1/§7.2: what to do when an ACE matches exactly what another client of the same domain (cdid) filters
    # with the opposite action: "reject" the new request (409, the RFC's default) or "allow" it.
    domain_conflicts: str = "reject"

    def __post_init__(self) -> None:
        self.capabilities = validate_capabilities(self.capabilities)
        if self.domain_conflicts not in ("reject", "allow"):
            raise ValueError("domain_conflicts must be 'reject' or 'allow'")


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


@dataclass(frozen=True)
class _Actor:
    """Who is asking (the TLS peer) and for which DOTS client (the path's cuid)."""

    peer: ClientAuthorization
    peer_cuid: str
    gateway: bool


class DataChannelService:
    def __init__(
        self,
        store: DataChannelStore,
        authorize: Callable[[str], ClientAuthorization | None],
        settings: DataChannelSettings | None = None,
    ) -> None:
        self.store = store
        self.authorize = authorize
        self.settings = settings or DataChannelSettings()
        self._listeners: list[Callable[[str], None]] = []
        self._now = 0.0  # the `now` of the request being handled
        self._prepared = Prepared(inline_bytes=None)  # the request being handled: parsed body, validated entries

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
        if activation_type not in ("activate-when-mitigating", "immediate", "deactivate"):
            raise ValueError(f"unknown activation type {activation_type!r}")
        stored = self.store.get_acl(cuid, name, now)
        if stored is None:
            return False
        body = {**stored.body, "activation-type": activation_type}
        expires = now + self.settings.lifetime if refresh_lifetime else stored.expires
        self.store.apply(Changes(cuid, acl_puts=[AclWrite(name, body, activation_type, expires, stored.position)]), now)
        for listener in self._listeners:
            listener(cuid)
        return True

    # ---- entry point -------------------------------------------------------------------------------------

    def handle(self, request: RestconfRequest, now: float, prepared: Prepared | None = None) -> RestconfResponse:
        """Answer REQUEST. PREPARED: its body parsed and entries validated off the loop by the shell; with one,
        the core raises NeedsValidation (before changing anything) for validation beyond PREPARED.inline_bytes."""
        self._prepared = prepared if prepared is not None else Prepared(inline_bytes=None)
        try:
            response = self._handle(request, now)
        except RestconfError as error:
            return RestconfResponse(error.status, error.body())
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and response.status < 300:
            body = self._prepared.body if isinstance(self._prepared.body, dict) else None
            for listener in self._listeners:
                listener(_changed_cuid(request.path, body, request.peer_cuid))
        return response

    def _handle(self, request: RestconfRequest, now: float) -> RestconfResponse:
        self._now = now
        peer = self.authorize(request.peer_cuid)
        if peer is None:
            raise RestconfError("access-denied", "this client certificate is not authorized", error_type="protocol")
        self._check_loop(request.via)
        if not _accepts_json(request.accept):
            raise RestconfError(
                "invalid-value", f"only {MEDIA_TYPE} responses are available", status=406, error_type="protocol"
            )
        if request.method not in METHODS:
            raise RestconfError("operation-not-supported", f"method {request.method} is not supported")
        query = parse_query(request.method, request.query)
        path = parse_data_path(request.path)
        actor = _Actor(peer, request.peer_cuid, peer.gateway or request.peer_cuid in self.settings.gateways)
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

    # ---- identity and registration state -------------------------------------------------------------------

    def _client(self, path: DataPath, actor: _Actor) -> ClientRecord:
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

    # ---- GET -----------------------------------------------------------------------------------------------

    def _get(self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        member, value, node_path = self._read(path, actor, now)
        node = schema_node(node_path)
        value = query.content.apply(node, value)
        if value is None:
            raise not_found("data of the requested content")
        # For one alias/ACL the reply wraps the entry in its container (RFC 8783 Fig. 29), but depth and
        # fields still count from the target resource, the entry.
        entry_list = _LIST_OF.get(member) if path.kind in ("alias", "acl") and not path.inner else None
        if entry_list is not None and isinstance(value, dict):
            value = {entry_list: self._select(value.get(entry_list, []), query)}
        else:
            value = self._select(value, query)
        reply = {f"{MODULE}:{member}": value}
        headers = {"Cache-Control": "no-cache"}
        if path.kind in ("datastore", "dots-data"):
            # RFC 8040 §3.4.1.2: the datastore has an entity-tag; this one changes with whatever this client sees.
            digest = hashlib.sha256(json.dumps(reply, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            headers["ETag"] = f'"{digest[:32]}"'
        if path.kind == "datastore":
            reply = {"ietf-restconf:data": reply}  # RFC 8040 §3.3.1: {+restconf}/data is the datastore node
        return RestconfResponse(200, reply, headers)

    @staticmethod
    def _select(value: Any, query: QueryParameters) -> Any:
        if query.fields is not None:
            return select_fields(value, query.fields, query.depth)
        if query.depth is not None:
            return prune_depth(value, query.depth)
        return value

    def _read(self, path: DataPath, actor: _Actor, now: float) -> tuple[str, Any, str]:
        """(member name, value, schema path) of the resource PATH names."""
        if path.kind in ("datastore", "dots-data"):
            view: dict[str, Any] = {}
            client = self.store.get_client(actor.peer_cuid)
            if client is not None:
                view["dots-client"] = [self._client_json(client, now)]
            view["capabilities"] = self.settings.capabilities
            return "dots-data", view, f"/{ROOT}"
        if path.kind == "capabilities":
            value: Any = self.settings.capabilities
            node_path = f"/{ROOT}/capabilities"
            for step in path.inner:
                if step.keys is not None or not isinstance(value, dict) or step.name not in value:
                    raise not_found(str(step))
                value = value[step.name]
                node_path += f"/{step.name}"
            return (path.inner[-1].name if path.inner else "capabilities"), value, node_path
        client = self._client(path, actor)
        if path.kind == "client":
            entry = self._client_json(client, now)
            if path.inner:
                leaf = path.inner[0].name
                if leaf not in entry:
                    raise not_found(leaf)
                return leaf, entry[leaf], f"/{ROOT}/dots-client/{leaf}"
            return "dots-client", [entry], f"/{ROOT}/dots-client"
        container = path.kind if path.kind in _LIST_OF else {"alias": "aliases", "acl": "acls"}[path.kind]
        list_name = _LIST_OF[container]
        list_path = f"/{ROOT}/dots-client/{container}/{list_name}"
        if path.kind == container:
            entries = self._entries(container, client.cuid, now)
            return (
                container,
                {list_name: [self._with_state(e, now) for e in entries]} if entries else {},
                f"/{ROOT}/dots-client/{container}",
            )
        stored = self._entry(container, client.cuid, path.name, now)
        entry = self._with_state(stored, now)
        if not path.inner:
            # RFC 8783 Figures 29 and 31 answer for one entry inside its container.
            return container, {list_name: [entry]}, f"/{ROOT}/dots-client/{container}"
        location = tree.locate(entry, schema_node(list_path), path.inner)
        if not location.exists():
            raise not_found("/".join(str(step) for step in path.inner))
        value = location.value()
        inner_path = list_path + "".join(f"/{step.name}" for step in path.inner)
        return path.inner[-1].name, [value] if location.keys is not None else value, inner_path

    def _client_json(self, client: ClientRecord, now: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"cuid": client.cuid}
        if client.cdid is not None:
            entry["cdid"] = client.cdid
        aliases = self.store.list_aliases(client.cuid, now)
        if aliases:
            entry["aliases"] = {"alias": [self._with_state(alias, now) for alias in aliases]}
        acls = self.store.list_acls(client.cuid, now)
        if acls:
            entry["acls"] = {"acl": [self._with_state(acl, now) for acl in acls]}
        return entry

    @staticmethod
    def _with_state(stored: StoredEntry, now: float) -> dict[str, Any]:
        entry = dict(stored.body)
        # pending-lifetime: whole minutes left (§6.2, §7.3); statistics are omitted, never invented.
        lifetime = {"pending-lifetime": max(0, int((stored.expires - now) // 60))}
        items = list(entry.items())
        return dict(items[:1] + list(lifetime.items()) + items[1:]) if items else lifetime

    def _entries(self, container: str, cuid: str, now: float) -> list[StoredEntry]:
        return self.store.list_aliases(cuid, now) if container == "aliases" else self.store.list_acls(cuid, now)

    def _entry(self, container: str, cuid: str, name: str | None, now: float) -> StoredEntry:
        assert name is not None
        found = self.store.get_alias(cuid, name, now) if container == "aliases" else self.store.get_acl(cuid, name, now)
        if found is None:
            raise not_found(f"{_LIST_OF[container]}={name}")
        return found

    # ---- POST ----------------------------------------------------------------------------------------------

    def _post(self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        if path.kind == "dots-data":
            return self._register(actor, body, now)
        if path.kind in ("datastore", "capabilities"):
            raise RestconfError("operation-not-supported", f"cannot create data in {path.kind}")
        client = self._client(path, actor)
        if path.kind == "client":
            members = _members(body, {"aliases", "acls"})
            if len(members) != 1:
                # RFC 8040 §4.4.1: the body of a POST holds exactly one child resource of the target.
                raise RestconfError("invalid-value", "POST creates one resource: aliases or acls, not both")
            aliases = _entries_of(members.get("aliases"), "alias", wrapped=True)
            acls = _entries_of(members.get("acls"), "acl", wrapped=True)
            if query.insert and not acls:
                raise _insert_not_allowed()
            location = self._create(client, actor, aliases, acls, query, now)
        elif path.kind in _LIST_OF:
            list_name = _LIST_OF[path.kind]
            members = _members(body, {list_name})
            entries = _entries_of(members[list_name], list_name, wrapped=False)
            if query.insert and path.kind != "acls":
                raise _insert_not_allowed()
            aliases, acls = (entries, []) if path.kind == "aliases" else ([], entries)
            location = self._create(client, actor, aliases, acls, query, now)
        else:
            location = self._edit_inner(client, actor, path, query, body, now, "POST")[1]
        return RestconfResponse(201, headers={"Location": location})

    def _register(self, actor: _Actor, body: Any, now: float) -> RestconfResponse:
        members = _members(body, {"dots-client"})
        entries = members["dots-client"]
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            raise RestconfError("invalid-value", "register exactly one dots-client per request (§5.1)")
        entry = entries[0]
        if "cuid" not in entry:
            raise RestconfError("missing-attribute", "dots-client needs a cuid (§5.1)")
        cuid = entry["cuid"]
        if cuid != actor.peer_cuid and not actor.gateway:
            raise RestconfError("access-denied", "the cuid does not match the client certificate")
        if self.store.get_client(cuid) is not None:
            raise RestconfError("resource-denied", f"dots-client={cuid} is already registered", status=409)
        changes = self._replace_client(actor, entry, cuid, now)
        self.store.apply(changes, now)
        return RestconfResponse(201, headers={"Location": _location(f"dots-client={quote(cuid, safe='')}")})

    def _replace_client(self, actor: _Actor, entry: dict[str, Any], cuid: str, now: float) -> Changes:
        unknown = sorted(set(entry) - {"cuid", "cdid", "aliases", "acls"})
        if unknown:
            raise RestconfError("unknown-element", f"unknown member(s) of dots-client: {', '.join(unknown)}")
        entry = dict(entry)
        if not actor.gateway:
            entry.pop("cdid", None)  # only a server-domain gateway may assert a client domain (RFC 9132 §4.4.1)
        cdid = entry.get("cdid")
        aliases = _entries_of(entry.get("aliases"), "alias", wrapped=False, container=True)
        acls = _entries_of(entry.get("acls"), "acl", wrapped=False, container=True)
        self._check_size(len(aliases) + len(acls))  # they replace all the client has
        canonical = self._validate(cuid, cdid, aliases, acls, actor.peer)
        changes = Changes(cuid, register=(cdid,), clear_aliases=True, clear_acls=True)
        changes.alias_puts = [(a["name"], a, now + self.settings.lifetime) for a in canonical["aliases"]]
        changes.acl_puts = [
            AclWrite(a["name"], a, _activation(a), now + self.settings.lifetime, float(i))
            for i, a in enumerate(canonical["acls"])
        ]
        return changes

    def _create(
        self,
        client: ClientRecord,
        actor: _Actor,
        aliases: list[dict[str, Any]],
        acls: list[dict[str, Any]],
        query: QueryParameters,
        now: float,
    ) -> str:
        if not aliases and not acls:
            raise RestconfError("missing-attribute", "nothing to create")
        # Counted first: a body over the limit is refused before any per-entry work.
        self._check_size(len(aliases) + len(acls))
        self._check_quota(client.cuid, len(aliases) + len(acls), now)
        for kind, entries in (("aliases", aliases), ("acls", acls)):
            existing = self._existing(kind, client.cuid, entries, now)
            for entry in entries:
                if entry.get("name") in existing:
                    raise RestconfError(
                        "resource-denied", f"{_LIST_OF[kind]}={entry['name']} already exists", status=409
                    )
        canonical = self._validate(client.cuid, client.cdid, aliases, acls, actor.peer)
        changes = Changes(client.cuid)
        changes.alias_puts = [(a["name"], a, now + self.settings.lifetime) for a in canonical["aliases"]]
        if canonical["acls"]:
            # The first goes where insert/point say, the next ones follow it in body order (§4.8.5).
            point = _point_name(query.point, "acl") if query.insert in ("before", "after") else None
            ordered = self.store.acl_positions(client.cuid, now)
            positions = block_positions(ordered, len(canonical["acls"]), query.insert or "last", point)
            for acl, position in zip(canonical["acls"], positions, strict=True):
                changes.acl_puts.append(
                    AclWrite(acl["name"], acl, _activation(acl), now + self.settings.lifetime, position)
                )
        self.store.apply(changes, now)
        first = canonical["aliases"][0] if canonical["aliases"] else canonical["acls"][0]
        kind = "aliases/alias" if canonical["aliases"] else "acls/acl"
        return _location(f"dots-client={quote(client.cuid, safe='')}/{kind}={quote(first['name'], safe='')}")

    def _place(
        self,
        cuid: str,
        name: str,
        insert: str | None,
        point: str | None,
        current: float | None,
        pending: list[tuple[str, float]],
        now: float,
    ) -> float:
        """Position of ACL NAME per `insert`/`point` (RFC 8040 §4.8.5); PENDING: placed earlier in this request."""
        if insert in ("before", "after"):
            others = [item for item in self.store.acl_positions(cuid, now) + pending if item[0] != name]
            return _position(others, insert, _point_name(point, "acl"))
        if insert is None and current is not None:
            return current  # a replace keeps its place
        bounds = self.store.acl_position_bounds(cuid, now, exclude=name)
        known = [position for _, position in pending] + (list(bounds) if bounds else [])
        if not known:
            return 0.0
        return min(known) - 1.0 if insert == "first" else max(known) + 1.0

    def _existing(self, kind: str, cuid: str, entries: list[dict[str, Any]], now: float) -> set[str]:
        """The names among ENTRIES' that CUID already has: point reads for a few, one read of all names for many."""
        names = {name for entry in entries if isinstance(name := entry.get("name"), str)}
        if len(names) > 8:
            return self.store.entry_names(kind, cuid, now) & names  # type: ignore[operator]
        return {name for name in names if self._exists(kind, cuid, name, now)}  # type: ignore[misc]

    def _exists(self, kind: str, cuid: str, name: Any, now: float) -> bool:
        if not isinstance(name, str):
            return False
        getter = self.store.get_alias if kind == "aliases" else self.store.get_acl
        return getter(cuid, name, now) is not None

    def _check_size(self, entries: int) -> None:
        if entries > self.settings.max_entries:
            raise RestconfError("resource-denied", f"at most {self.settings.max_entries} aliases and ACLs per client")

    def _check_quota(self, cuid: str, adding: int, now: float) -> None:
        if self.store.count_entries(cuid, now) + adding > self.settings.max_entries:
            raise RestconfError("resource-denied", f"at most {self.settings.max_entries} aliases and ACLs per client")

    # ---- PUT / PATCH ----------------------------------------------------------------------------------------

    def _put(self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        return self._write(path, actor, query, body, now, "PUT")

    def _patch(self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        return self._write(path, actor, query, body, now, "PATCH")

    def _write(
        self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float, method: str
    ) -> RestconfResponse:
        if path.kind in ("datastore", "dots-data", "capabilities"):
            raise RestconfError("operation-not-supported", f"{method} is not allowed on {path.kind}")
        if path.kind == "client":
            return self._write_client(path, actor, query, body, now, method)
        client = self._client(path, actor)
        if path.kind in _LIST_OF:
            return self._write_collection(client, path, actor, query, body, now, method)
        if path.inner:
            created = self._edit_inner(client, actor, path, query, body, now, method)[0]
            return RestconfResponse(201 if created else 204)
        container = "aliases" if path.kind == "alias" else "acls"
        entry = _single_entry(body, path.kind, container, path.name)
        existing = self.store.get_alias(client.cuid, path.name, now) if path.kind == "alias" else None
        existing_acl = self.store.get_acl(client.cuid, path.name, now) if path.kind == "acl" else None
        stored = existing or existing_acl
        if method == "PATCH":
            if stored is None:
                raise not_found(f"{path.kind}={path.name}")
            entry = tree.merge_entry(schema_node(f"/{ROOT}/dots-client/{container}/{path.kind}"), stored.body, entry)
        if query.insert and path.kind != "acl":
            raise _insert_not_allowed()
        self._save_entries(client, actor, container, [entry], query, now, stored)
        return RestconfResponse(204 if stored else 201)

    def _write_client(
        self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float, method: str
    ) -> RestconfResponse:
        if path.inner or query.insert:
            raise RestconfError("operation-not-supported", f"{method} is not allowed on this node")
        if path.cuid != actor.peer_cuid and not actor.gateway:
            raise not_found(f"dots-client={path.cuid}")
        entry = _single_entry(body, "dots-client", None, path.cuid, key="cuid")
        existing = self.store.get_client(path.cuid or "")
        if existing is not None:
            self._client(path, actor)  # a gateway may not replace a client registered without a cdid
        if method == "PATCH":
            if existing is None:
                raise not_found(f"dots-client={path.cuid}")
            self._client(path, actor)
            current = self._client_json(existing, now)
            for state in current.get("aliases", {}).get("alias", []) + current.get("acls", {}).get("acl", []):
                state.pop("pending-lifetime", None)
            entry = tree.merge_entry(schema_node(f"/{ROOT}/dots-client"), current, entry)
        changes = self._replace_client(actor, entry, path.cuid or "", now)
        if existing is not None and existing.cdid is not None and changes.register == (None,):
            changes.register = (existing.cdid,)
        self.store.apply(changes, now)
        return RestconfResponse(204 if existing else 201)

    def _write_collection(
        self,
        client: ClientRecord,
        path: DataPath,
        actor: _Actor,
        query: QueryParameters,
        body: Any,
        now: float,
        method: str,
    ) -> RestconfResponse:
        if query.insert:
            raise _insert_not_allowed()
        container, list_name = path.kind, _LIST_OF[path.kind]
        members = _members(body, {container})
        entries = _entries_of(members[container], list_name, wrapped=True)
        if method == "PATCH":
            merged = []
            for entry in entries:
                stored = self._stored(container, client.cuid, entry.get("name"), now)
                node = schema_node(f"/{ROOT}/dots-client/{container}/{list_name}")
                merged.append(tree.merge_entry(node, stored.body, entry) if stored else entry)
            self._save_entries(client, actor, container, merged, query, now, None, keep_others=True)
            return RestconfResponse(204)
        self._save_entries(client, actor, container, entries, query, now, None, keep_others=False)
        return RestconfResponse(204)

    def _stored(self, container: str, cuid: str, name: Any, now: float) -> StoredEntry | None:
        if not isinstance(name, str):
            return None
        return self.store.get_alias(cuid, name, now) if container == "aliases" else self.store.get_acl(cuid, name, now)

    def _save_entries(
        self,
        client: ClientRecord,
        actor: _Actor,
        container: str,
        entries: list[dict[str, Any]],
        query: QueryParameters,
        now: float,
        replacing: StoredEntry | None,
        keep_others: bool = True,
    ) -> None:
        aliases, acls = (entries, []) if container == "aliases" else ([], entries)
        # Counted first: a body over the limit is refused before any per-entry work.
        self._check_size(len(entries))
        if not keep_others:
            others = self.store.count_entries(client.cuid, now) - len(self._entries(container, client.cuid, now))
            if others + len(entries) > self.settings.max_entries:
                raise RestconfError("resource-denied", f"at most {self.settings.max_entries} aliases and ACLs")
        else:
            existing = self._existing(container, client.cuid, entries, now)
            fresh = sum(1 for e in entries if e.get("name") not in existing)
            self._check_quota(client.cuid, fresh, now)
        canonical = self._validate(client.cuid, client.cdid, aliases, acls, actor.peer)
        changes = Changes(client.cuid)
        changes.clear_aliases = not keep_others and container == "aliases"
        changes.clear_acls = not keep_others and container == "acls"
        expires = now + self.settings.lifetime  # a PUT refreshes the lifetime (§7.2)
        changes.alias_puts = [(a["name"], a, expires) for a in canonical["aliases"]]
        if canonical["acls"] and not keep_others:
            positions = [float(index) for index in range(len(canonical["acls"]))]
        elif len(canonical["acls"]) == 1 and (query.insert or replacing is not None):
            # One ACL (PUT on it): it keeps its place unless insert/point moves it.
            acl = canonical["acls"][0]
            stored = replacing if replacing is not None else self.store.get_acl(client.cuid, acl["name"], now)
            current = stored.position if stored is not None else None
            positions = [self._place(client.cuid, acl["name"], query.insert, query.point, current, [], now)]
        elif canonical["acls"]:
            # Stored ones keep their place, new ones follow the last (one read of the positions, not one per ACL).
            stored_positions = dict(self.store.acl_positions(client.cuid, now))
            last = max(stored_positions.values(), default=-1.0)
            positions = []
            for acl in canonical["acls"]:
                current = stored_positions.get(acl["name"])
                if current is None:
                    last += 1.0
                    current = last
                positions.append(current)
        else:
            positions = []
        for acl, position in zip(canonical["acls"], positions, strict=True):
            changes.acl_puts.append(AclWrite(acl["name"], acl, _activation(acl), expires, position))
        self.store.apply(changes, now)

    def _edit_inner(
        self,
        client: ClientRecord,
        actor: _Actor,
        path: DataPath,
        query: QueryParameters,
        body: Any,
        now: float,
        method: str,
    ) -> tuple[bool, str]:
        """PUT/PATCH/DELETE/POST below one alias or ACL entry: edit its JSON, then validate and save it whole."""
        container = "aliases" if path.kind == "alias" else "acls"
        stored = self._entry(container, client.cuid, path.name, now)
        entry = copy.deepcopy(stored.body)
        list_node = schema_node(f"/{ROOT}/dots-client/{container}/{path.kind}")
        steps = path.inner
        if method == "POST":
            (member, value), *extra = _members(body, None).items()
            if extra:
                raise RestconfError("invalid-value", "POST creates exactly one child resource")
            target = tree.locate(entry, list_node, steps) if steps else None
            if target is not None and not target.exists():  # before value(): a missing list entry has no index
                raise not_found(str(steps[-1]))
            parent = target.value() if target is not None else entry
            parent_node = target.node if target is not None else list_node
            child = tree.child_node(parent_node, member)
            keys = tree.key_names(child)
            items = value if isinstance(value, list) else [value]
            if len(items) != 1 or not isinstance(parent, dict):
                raise RestconfError("invalid-value", "POST creates exactly one child resource")
            item = items[0]
            if keys:
                existing = parent.get(member, [])
                key_values = tuple(str(item.get(k)) for k in keys) if isinstance(item, dict) else ()
                if any(tuple(str(e.get(k)) for k in keys) == key_values for e in existing):
                    raise RestconfError("resource-denied", f"{member}={','.join(key_values)} already exists")
                index = _list_index([str(e.get(keys[0])) for e in existing], query, member)
                parent.setdefault(member, []).insert(index, item)
                created_step = f"{member}={','.join(quote(v, safe='') for v in key_values)}"
            else:
                if query.insert:
                    raise _insert_not_allowed()
                if member in parent:
                    raise RestconfError("resource-denied", f"{member} already exists")
                parent[member] = item
                created_step = member
            created = True
            suffix = "/".join([*(str(s) for s in steps), created_step])
        else:
            location = tree.locate(entry, list_node, steps)
            if method == "DELETE":
                tree.delete(location)
                created = False
            else:
                expected = steps[-1]
                value = _single_member(body, expected.name)
                if location.keys is not None:
                    value = _single_keyed(value, location.node, expected)
                if method == "PATCH":
                    if not location.exists():
                        raise not_found(str(expected))
                    value = tree.merge(location.node, location.value(), value)
                created = tree.replace(location, value)
            suffix = "/".join(str(s) for s in steps)
        if path.kind == "alias" and not entry.get("name"):
            raise RestconfError("invalid-value", "the entry key cannot be removed")
        self._save_entries(client, actor, container, [entry], QueryParameters(), now, stored)
        entry_step = f"{path.kind}={quote(path.name or '', safe='')}"
        return created, _location(f"dots-client={quote(client.cuid, safe='')}/{container}/{entry_step}/{suffix}")

    # ---- DELETE --------------------------------------------------------------------------------------------

    def _delete(self, path: DataPath, actor: _Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        if path.kind in ("datastore", "dots-data", "capabilities"):
            raise RestconfError("operation-not-supported", f"DELETE is not allowed on {path.kind}")
        if path.kind == "client":
            if path.inner:
                raise RestconfError("operation-not-supported", "the client's key cannot be deleted")
            client = self._client(path, actor)
            self.store.apply(Changes(client.cuid, unregister=True), now)  # §5.2: its aliases and ACLs go too
            return RestconfResponse(204)
        client = self._client(path, actor)
        if path.kind in _LIST_OF:
            changes = Changes(client.cuid, clear_aliases=path.kind == "aliases", clear_acls=path.kind == "acls")
            self.store.apply(changes, now)
            return RestconfResponse(204)
        container = "aliases" if path.kind == "alias" else "acls"
        if path.inner:
            self._edit_inner(client, actor, path, query, None, now, "DELETE")
            return RestconfResponse(204)
        self._entry(container, client.cuid, path.name, now)
        changes = Changes(client.cuid)
        (changes.alias_deletes if container == "aliases" else changes.acl_deletes).append(path.name or "")
        self.store.apply(changes, now)
        return RestconfResponse(204)

    # ---- validation ----------------------------------------------------------------------------------------

    def _validate(
        self,
        cuid: str,
        cdid: str | None,
        aliases: list[dict[str, Any]],
        acls: list[dict[str, Any]],
        peer: ClientAuthorization | None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Canonical aliases and ACLs after YANG validation (yangson) and the policy checks."""
        for kind, entries in (("alias", aliases), ("acl", acls)):
            names = [entry.get("name") for entry in entries]
            if len(set(map(str, names))) != len(names):
                raise RestconfError("invalid-value", f"the request names the same {kind} twice")
        shell = {"cuid": cuid} if cdid is None else {"cuid": cuid, "cdid": cdid}
        try:
            validate_client(shell)  # the client's own leaves; its aliases and ACLs one by one below
        except ModelError as error:
            raise RestconfError(error.error_tag, error.message, path=error.path) from None
        if peer is None:
            raise RestconfError("access-denied", "this client is not authorized")

        def check(list_name: str, canonical: dict[str, Any]) -> None:
            """The policy checks of one valid entry (pure: they may run off the loop with the validation)."""
            if list_name == "alias":
                check_alias(Alias.from_json(cuid, canonical), peer)
            else:
                check_capabilities(canonical, self.settings.capabilities)
                check_acl(Acl.from_json(cuid, canonical), peer)

        prepared = self._prepared
        keys = {
            name: [memo_key(name, entry) for entry in entries] for name, entries in (("alias", aliases), ("acl", acls))
        }
        missing = [
            (name, entry, key)
            for name, entries in (("alias", aliases), ("acl", acls))
            for key, entry in zip(keys[name], entries, strict=True)
            if key not in prepared.canonical
        ]
        work = [(name, entry) for name, entry, _ in missing]
        if prepared.inline_bytes is not None and sum(len(key) for *_, key in missing) > prepared.inline_bytes:
            raise NeedsValidation(work, check)
        prepared.validate(work, check)
        # Every entry's YANG errors before any policy error, in body order, as one validation of the whole would.
        results = [prepared.canonical[key] for name in ("alias", "acl") for key in keys[name]]
        for canonical, _ in results:
            if isinstance(canonical, ModelError):
                # Validated under a placeholder client (the memo does not depend on who asks): name the real one.
                message, path = (
                    text.replace(PLACEHOLDER_STEP, f"dots-client={cuid}").replace(PLACEHOLDER_KEY, f'[cuid="{cuid}"]')
                    if text is not None
                    else None
                    for text in (canonical.message, canonical.path)
                )
                raise RestconfError(canonical.error_tag, message or "", path=path)
        for _, refused in results:
            if refused is not None:
                raise refused
        result = {
            "aliases": [prepared.canonical[key][0] for key in keys["alias"]],
            "acls": [prepared.canonical[key][0] for key in keys["acl"]],
        }
        if result["acls"] and cdid is not None and self.settings.domain_conflicts == "reject":
            self._check_domain_conflicts(cuid, cdid, result["acls"])
        return result  # type: ignore[return-value]

    def _check_domain_conflicts(self, cuid: str, cdid: str, acls: list[dict[str, Any]]) -> None:
        """409 if an ACE matches exactly what another client of the domain filters with the opposite action."""
        actions_by_match: dict[str, str] = {}
        for _, stored in self.store.domain_acls(cdid, cuid, now=self._now):
            for ace in stored.body.get("aces", {}).get("ace", []):
                actions_by_match[_match_key(ace)] = ace["actions"]["forwarding"]
        if not actions_by_match:
            return
        for acl in acls:
            for ace in acl.get("aces", {}).get("ace", []):
                other = actions_by_match.get(_match_key(ace))
                if other is not None and other != ace["actions"]["forwarding"]:
                    raise RestconfError(
                        "resource-denied",
                        f"ACE {ace['name']!r} conflicts with a filter another client of this domain installed",
                        status=409,
                    )


# ---- helpers -------------------------------------------------------------------------------------------------


def _match_key(ace: dict[str, Any]) -> str:
    return json.dumps(ace.get("matches", {}), sort_keys=True)


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


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in (MEDIA_TYPE, "application/yang-data", "application/json", "*/*", "application/*"):
            return True
    return False


def _members(body: Any, allowed: set[str] | None) -> dict[str, Any]:
    """The top-level members of a body, by local name; they must be qualified with the module (RFC 7951 §4)."""
    result = {}
    for member, value in body.items():
        module, _, local = member.rpartition(":")
        if module != MODULE:
            raise RestconfError("unknown-element", f"unexpected top-level member {member!r}", path=member)
        if allowed is not None and local not in allowed:
            raise RestconfError("unknown-element", f"{member!r} cannot be created here", path=member)
        result[local] = value
    if not result:
        raise RestconfError("missing-attribute", "the body has no data")
    return result


def _entries_of(value: Any, list_name: str, *, wrapped: bool, container: bool = False) -> list[dict[str, Any]]:
    """List entries from a container value ({list_name: [...]}) or a bare list."""
    if value is None:
        return []
    if wrapped or container:
        if not isinstance(value, dict) or set(value) - {list_name}:
            raise RestconfError("unknown-element", f"expected {{{list_name!r}: [...]}}")
        value = value.get(list_name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RestconfError("invalid-value", f"{list_name} must be a list of entries")
    for item in value:
        if "name" not in item:
            raise RestconfError("missing-attribute", f"every {list_name} needs a name")
    return value


def _single_member(body: Any, name: str) -> Any:
    members = _members(body, {name})
    return members[name]


def _single_entry(body: Any, list_name: str, container: str | None, key_value: str | None, key: str = "name") -> Any:
    """The one entry of a PUT/PATCH on a list instance; RFC 8783 also wraps it in its container (Fig. 25)."""
    allowed = {list_name} | ({container} if container else set())
    members = _members(body, allowed)
    if len(members) != 1:
        raise RestconfError("invalid-value", "the body must hold exactly the target resource")
    ((member, value),) = members.items()
    if member == container:
        if not isinstance(value, dict) or set(value) != {list_name}:
            raise RestconfError("unknown-element", f"expected {{{list_name!r}: [entry]}}")
        value = value[list_name]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise RestconfError("invalid-value", f"the body must hold exactly one {list_name}")
    entry = value[0]
    if entry.get(key) != key_value:
        raise RestconfError("invalid-value", f"the {key} in the body must equal the one in the URI (RFC 8040 §4.5)")
    return entry


def _single_keyed(value: Any, node: Any, step: Step) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise RestconfError("invalid-value", f"the body must hold exactly one {step.name}")
        value = value[0]
    keys = tree.key_names(node)
    if keys and (not isinstance(value, dict) or tuple(str(value.get(k)) for k in keys) != step.keys):
        raise RestconfError("invalid-value", "the keys in the body must equal the ones in the URI (RFC 8040 §4.5)")
    if not keys and str(value) != (step.keys or ("",))[0]:
        raise RestconfError("invalid-value", "a leaf-list instance cannot change its value")
    return value


def _activation(acl: dict[str, Any]) -> str:
    return acl.get("activation-type", "activate-when-mitigating")


def _insert_not_allowed() -> RestconfError:
    return RestconfError(
        "invalid-value", "insert/point apply only to ordered-by user lists (acl, ace)", error_type="protocol"
    )


def _point_name(point: str | None, list_name: str) -> str:
    if point is None:
        raise RestconfError("invalid-value", "point is missing", error_type="protocol")
    # A target resource URI (with or without the API root), or just the entry's own segment ("acl=x").
    point = point.removeprefix(f"{RESTCONF_ROOT}/data")
    steps = parse_steps(point if point.startswith("/") else f"/{MODULE}:{point}")
    last = steps[-1] if steps else None
    if last is None or last.name != list_name or not last.keys or len(last.keys) != 1:
        raise RestconfError("invalid-value", f"point must name a {list_name} entry", error_type="protocol")
    return last.keys[0]


def _position(positions: list[tuple[str, float]], insert: str, point: str | None) -> float:
    """A sort key placing a new ACL per RFC 8040 §4.8.5 among POSITIONS (sorted (name, position))."""
    ordered = sorted(positions, key=lambda item: item[1])
    if not ordered:
        return 0.0
    if insert == "first":
        return ordered[0][1] - 1.0
    if insert == "last":
        return ordered[-1][1] + 1.0
    index = next((i for i, (name, _) in enumerate(ordered) if name == point), None)
    if index is None:
        raise RestconfError("invalid-value", f"insertion point acl={point} does not exist", error_type="protocol")
    if insert == "before":
        previous = ordered[index - 1][1] if index > 0 else ordered[index][1] - 2.0
        return (previous + ordered[index][1]) / 2
    following = ordered[index + 1][1] if index + 1 < len(ordered) else ordered[index][1] + 2.0
    return (ordered[index][1] + following) / 2


def _list_index(names: list[str], query: QueryParameters, list_name: str) -> int:
    if query.insert in (None, "last"):
        return len(names)
    if query.insert == "first":
        return 0
    point = _point_name(query.point, list_name)
    if point not in names:
        raise RestconfError(
            "invalid-value", f"insertion point {list_name}={point} does not exist", error_type="protocol"
        )
    return names.index(point) + (1 if query.insert == "after" else 0)


def _location(suffix: str) -> str:
    return f"{RESTCONF_ROOT}/data/{ROOT}/{suffix}"
