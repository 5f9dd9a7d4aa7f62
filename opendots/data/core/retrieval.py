"""GET and HEAD (RFC 8040 §4.3): the datastore, a client, its aliases and ACLs or a node inside one, rendered
as RFC 7951 JSON with `content`, `depth` and `fields` applied, and the datastore's entity-tag (§3.4.1.2)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from opendots.data.core import tree
from opendots.data.core.base import LIST_OF, CoreBase
from opendots.data.core.errors import not_found
from opendots.data.core.messages import Actor, RestconfResponse
from opendots.data.core.paths import DataPath
from opendots.data.core.query import QueryParameters, prune_depth, select_fields
from opendots.model.data_channel import MODULE, ROOT, schema_node
from opendots.model.vendor_mapping import MAPPING
from opendots.store.data_records import ClientRecord, StoredEntry


class Retrieval(CoreBase):
    def _get(self, path: DataPath, actor: Actor, query: QueryParameters, body: Any, now: float) -> RestconfResponse:
        member, value, node_path = self._read(path, actor, now)
        node = schema_node(node_path)
        value = query.content.apply(node, value)
        if value is None:
            raise not_found("data of the requested content")
        # For one alias/ACL the reply wraps the entry in its container (RFC 8783 Fig. 29), but depth and
        # fields still count from the target resource, the entry.
        entry_list = LIST_OF.get(member) if path.kind in ("alias", "acl") and not path.inner else None
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

    def _read(self, path: DataPath, actor: Actor, now: float) -> tuple[str, Any, str]:
        """(member name, value, schema path) of the resource PATH names."""
        if path.kind in ("datastore", "dots-data"):
            view: dict[str, Any] = {}
            client = self.store.get_client(actor.peer_cuid)
            if client is not None:
                view["dots-client"] = [self._client_json(client, now)]
            view["capabilities"] = self.settings.capabilities
            if self.settings.vendor_mapping is not None:
                view[MAPPING] = self.settings.vendor_mapping  # RFC 9244 §8.1.6: the server's, to every client
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
        container = path.kind if path.kind in LIST_OF else {"alias": "aliases", "acl": "acls"}[path.kind]
        list_name = LIST_OF[container]
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
        mapping = self.store.get_vendor_mapping(client.cuid)
        if mapping is not None:
            entry[MAPPING] = mapping
        return entry

    @staticmethod
    def _with_state(stored: StoredEntry, now: float) -> dict[str, Any]:
        entry = dict(stored.body)
        # pending-lifetime: whole minutes left (§6.2, §7.3); statistics are omitted, never invented.
        lifetime = {"pending-lifetime": max(0, int((stored.expires - now) // 60))}
        items = list(entry.items())
        return dict(items[:1] + list(lifetime.items()) + items[1:]) if items else lifetime
