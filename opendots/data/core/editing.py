"""PUT and PATCH (RFC 8040 §4.5, §4.6; RFC 8783 §6.3, §7.2), and edits below one alias or ACL entry (POST,
PUT, PATCH, DELETE of an inner node): the entry is edited as JSON, then validated and saved whole."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from opendots.data.core import tree
from opendots.data.core.base import LIST_OF, activation_of
from opendots.data.core.creation import Creation
from opendots.data.core.errors import RestconfError, not_found
from opendots.data.core.messages import Actor, RestconfResponse, location_of
from opendots.data.core.ordering import block_positions, insert_not_allowed, list_index, point_name
from opendots.data.core.paths import DataPath
from opendots.data.core.query import QueryParameters
from opendots.data.core.shapes import entries_of, members_of, single_entry, single_keyed, single_member
from opendots.model.data_channel import ROOT, schema_node
from opendots.store.data_records import AclWrite, Changes, ClientRecord, StoredEntry


class Editing(Creation):
    def _place(
        self,
        cuid: str,
        name: str,
        insert: str | None,
        point: str | None,
        current: float | None,
        now: float,
    ) -> float:
        """Position of ACL NAME per `insert`/`point` (RFC 8040 §4.8.5): where a replace or a move puts it."""
        if insert in ("before", "after"):
            others = [item for item in self.store.acl_positions(cuid, now) if item[0] != name]
            return block_positions(others, 1, insert, point_name(point, "acl"))[0]
        if insert is None and current is not None:
            return current  # a replace keeps its place
        bounds = self.store.acl_position_bounds(cuid, now, exclude=name)
        known = list(bounds) if bounds else []
        if not known:
            return 0.0
        return min(known) - 1.0 if insert == "first" else max(known) + 1.0

    def _put(self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        return self._write(path, actor, query, body, now, "PUT")

    def _patch(self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        return self._write(path, actor, query, body, now, "PATCH")

    def _write(
        self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float, method: str
    ) -> RestconfResponse:
        if path.kind in ("datastore", "dots-data", "capabilities"):
            raise RestconfError("operation-not-supported", f"{method} is not allowed on {path.kind}")
        if path.kind == "client":
            return self._write_client(path, actor, query, body, now, method)
        client = self._client(path, actor)
        if path.kind in LIST_OF:
            return self._write_collection(client, path, actor, query, body, now, method)
        if path.inner:
            created = self._edit_inner(client, actor, path, query, body, now, method)[0]
            return RestconfResponse(201 if created else 204)
        container = "aliases" if path.kind == "alias" else "acls"
        entry = single_entry(body, path.kind, container, path.name)
        existing = self.store.get_alias(client.cuid, path.name, now) if path.kind == "alias" else None
        existing_acl = self.store.get_acl(client.cuid, path.name, now) if path.kind == "acl" else None
        stored = existing or existing_acl
        if method == "PATCH":
            if stored is None:
                raise not_found(f"{path.kind}={path.name}")
            entry = tree.merge_entry(schema_node(f"/{ROOT}/dots-client/{container}/{path.kind}"), stored.body, entry)
        if query.insert and path.kind != "acl":
            raise insert_not_allowed()
        self._save_entries(client, actor, container, [entry], query, now, stored)
        return RestconfResponse(204 if stored else 201)

    def _write_client(
        self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float, method: str
    ) -> RestconfResponse:
        if path.inner or query.insert:
            raise RestconfError("operation-not-supported", f"{method} is not allowed on this node")
        if path.cuid != actor.peer_cuid and not actor.gateway:
            raise not_found(f"dots-client={path.cuid}")
        entry = single_entry(body, "dots-client", None, path.cuid, key="cuid")
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
        self._commit(changes)
        return RestconfResponse(204 if existing else 201)

    def _write_collection(
        self,
        client: ClientRecord,
        path: DataPath,
        actor: Actor,
        query: QueryParameters,
        body: Any,
        now: float,
        method: str,
    ) -> RestconfResponse:
        if query.insert:
            raise insert_not_allowed()
        container, list_name = path.kind, LIST_OF[path.kind]
        members = members_of(body, {container})
        entries = entries_of(members[container], list_name, wrapped=True)
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

    def _save_entries(
        self,
        client: ClientRecord,
        actor: Actor,
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
            others = self.store.count_entries(client.cuid, now) - len(
                self.store.entry_names(container, client.cuid, now)
            )
            self._check_size(others + len(entries))
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
            positions = [self._place(client.cuid, acl["name"], query.insert, query.point, current, now)]
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
            changes.acl_puts.append(AclWrite(acl["name"], acl, activation_of(acl), expires, position))
        self._commit(changes)

    def _edit_inner(
        self,
        client: ClientRecord,
        actor: Actor,
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
            (member, value), *extra = members_of(body, None).items()
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
                index = list_index([str(e.get(keys[0])) for e in existing], query, member)
                parent.setdefault(member, []).insert(index, item)
                created_step = f"{member}={','.join(quote(v, safe='') for v in key_values)}"
            else:
                if query.insert:
                    raise insert_not_allowed()
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
                value = single_member(body, expected.name)
                if location.keys is not None:
                    value = single_keyed(value, location.node, expected)
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
        return created, location_of(f"dots-client={quote(client.cuid, safe='')}/{container}/{entry_step}/{suffix}")
