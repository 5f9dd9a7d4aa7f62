"""POST (RFC 8040 §4.4.1, RFC 8783 §5.1, §6.1, §7.1): registering a client, creating its aliases or ACLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from opendots.data.core.base import LIST_OF, activation_of
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import Actor, RestconfResponse, location_of
from opendots.data.core.ordering import block_positions, insert_not_allowed, point_name
from opendots.data.core.paths import DataPath
from opendots.data.core.query import QueryParameters
from opendots.data.core.shapes import entries_of, members_of
from opendots.data.core.validation import Validation
from opendots.store.data_records import AclWrite, Changes, ClientRecord


class Creation(Validation):
    def _post(self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        if path.kind == "dots-data":
            return self._register(actor, body, now)
        if path.kind in ("datastore", "capabilities"):
            raise RestconfError("operation-not-supported", f"cannot create data in {path.kind}")
        client = self._client(path, actor)
        if path.kind == "client":
            members = members_of(body, {"aliases", "acls"})
            if len(members) != 1:
                # RFC 8040 §4.4.1: the body of a POST holds exactly one child resource of the target.
                raise RestconfError("invalid-value", "POST creates one resource: aliases or acls, not both")
            aliases = entries_of(members.get("aliases"), "alias", wrapped=True)
            acls = entries_of(members.get("acls"), "acl", wrapped=True)
            if query.insert and not acls:
                raise insert_not_allowed()
            location = self._create(client, actor, aliases, acls, query, now)
        elif path.kind in LIST_OF:
            list_name = LIST_OF[path.kind]
            members = members_of(body, {list_name})
            entries = entries_of(members[list_name], list_name, wrapped=False)
            if query.insert and path.kind != "acls":
                raise insert_not_allowed()
            aliases, acls = (entries, []) if path.kind == "aliases" else ([], entries)
            location = self._create(client, actor, aliases, acls, query, now)
        else:
            location = self._edit_inner(client, actor, path, query, body, now, "POST")[1]
        return RestconfResponse(201, headers={"Location": location})

    def _register(self, actor: Actor, body: Any, now: float) -> RestconfResponse:
        members = members_of(body, {"dots-client"})
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
        self._commit(changes)
        return RestconfResponse(201, headers={"Location": location_of(f"dots-client={quote(cuid, safe='')}")})

    def _replace_client(self, actor: Actor, entry: dict[str, Any], cuid: str, now: float) -> Changes:
        unknown = sorted(set(entry) - {"cuid", "cdid", "aliases", "acls"})
        if unknown:
            raise RestconfError("unknown-element", f"unknown member(s) of dots-client: {', '.join(unknown)}")
        entry = dict(entry)
        if not actor.gateway:
            entry.pop("cdid", None)  # only a server-domain gateway may assert a client domain (RFC 9132 §4.4.1)
        cdid = entry.get("cdid")
        aliases = entries_of(entry.get("aliases"), "alias", wrapped=False, container=True)
        acls = entries_of(entry.get("acls"), "acl", wrapped=False, container=True)
        self._check_size(len(aliases) + len(acls))  # they replace all the client has
        canonical = self._validate(cuid, cdid, aliases, acls, actor.peer)
        changes = Changes(cuid, register=(cdid,), clear_aliases=True, clear_acls=True)
        changes.alias_puts = [(a["name"], a, now + self.settings.lifetime) for a in canonical["aliases"]]
        changes.acl_puts = [
            AclWrite(a["name"], a, activation_of(a), now + self.settings.lifetime, float(i))
            for i, a in enumerate(canonical["acls"])
        ]
        return changes

    def _create(
        self,
        client: ClientRecord,
        actor: Actor,
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
                        "resource-denied", f"{LIST_OF[kind]}={entry['name']} already exists", status=409
                    )
        canonical = self._validate(client.cuid, client.cdid, aliases, acls, actor.peer)
        changes = Changes(client.cuid)
        changes.alias_puts = [(a["name"], a, now + self.settings.lifetime) for a in canonical["aliases"]]
        if canonical["acls"]:
            # The first goes where insert/point say, the next ones follow it in body order (§4.8.5).
            point = point_name(query.point, "acl") if query.insert in ("before", "after") else None
            ordered = self.store.acl_positions(client.cuid, now)
            positions = block_positions(ordered, len(canonical["acls"]), query.insert or "last", point)
            for acl, position in zip(canonical["acls"], positions, strict=True):
                changes.acl_puts.append(
                    AclWrite(acl["name"], acl, activation_of(acl), now + self.settings.lifetime, position)
                )
        self._commit(changes)
        first = canonical["aliases"][0] if canonical["aliases"] else canonical["acls"][0]
        kind = "aliases/alias" if canonical["aliases"] else "acls/acl"
        return location_of(f"dots-client={quote(client.cuid, safe='')}/{kind}={quote(first['name'], safe='')}")
