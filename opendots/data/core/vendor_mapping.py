"""RFC 9244 §8.1.6 vendor attack mapping over the data channel (`ietf-dots-mapping`).

`dots-data/ietf-dots-mapping:vendor-mapping` is the server's mapping (state data from `[data] vendor_mapping`,
GET only, `depth=3` lists the vendors without their attacks, Figures 32-34); `dots-data/dots-client=<cuid>/
ietf-dots-mapping:vendor-mapping[/vendor=<id>]` is the client's own: POST on its dots-client installs it (Figure
30, 201), PUT replaces it or one vendor (201 or 204), GET reads it (Figure 35), DELETE removes it or one vendor.
`capabilities` says 'vendor-mapping-enabled', so a client may send attack-ids without descriptions. Bodies are
validated against the official module (opendots.model.vendor_mapping); a client only ever reaches its own mapping;
writes go out as the request's one change set like every other data-channel write.
"""

from __future__ import annotations

from typing import Any

from opendots.data.core.base import CoreBase
from opendots.data.core.errors import RestconfError, not_found
from opendots.data.core.messages import Actor, RestconfResponse
from opendots.data.core.paths import DataPath, Step
from opendots.data.core.query import QueryParameters, prune_depth
from opendots.model.data_channel import ROOT, ModelError, schema_node
from opendots.model.vendor_mapping import MAPPING, MAPPING_MODULE, validate_vendor_mapping
from opendots.store.data_records import Changes, ClientRecord

MAPPING_KINDS = ("server-mapping", "client-mapping")
VENDOR = f"{MAPPING_MODULE}:vendor"


class VendorMappings(CoreBase):
    def _mapping(
        self, method: str, path: DataPath, actor: Actor, query: QueryParameters, body: Any
    ) -> RestconfResponse:
        if path.kind == "server-mapping":
            if method != "GET":
                raise RestconfError("operation-not-supported", f"{method} is not allowed on the server's mapping")
            mapping = self.settings.vendor_mapping
            if mapping is None:
                raise not_found("the DOTS server's vendor-mapping")
            return self._mapping_reply(mapping, path, query, f"/{ROOT}/{MAPPING_MODULE}:vendor-mapping")
        client = self._client(path, actor)
        stored = self.store.get_vendor_mapping(client.cuid)
        if method == "GET":
            if stored is None:
                raise not_found("vendor-mapping")
            node = f"/{ROOT}/dots-client/{MAPPING_MODULE}:vendor-mapping"
            return self._mapping_reply(stored, path, query, node)
        if method == "PUT":
            return self._mapping_put(client, path, body, stored)
        if method == "DELETE":
            return self._mapping_delete(client, path, stored)
        if method == "POST" and not path.inner:
            return self._mapping_post(client, stored, body)
        raise RestconfError("operation-not-supported", f"{method} is not supported on vendor-mapping")

    def _mapping_reply(
        self, mapping: dict[str, Any], path: DataPath, query: QueryParameters, node_path: str
    ) -> RestconfResponse:
        configuration = path.kind == "client-mapping"  # a client's mapping is configuration, the server's state
        if not (query.content.config if configuration else query.content.nonconfig):
            raise not_found("data of the requested content")
        vendor_id = _vendor_id(path.inner)
        if vendor_id is None:
            value = prune_depth(mapping, query.depth) if query.depth is not None else mapping
            return RestconfResponse(200, {MAPPING: value}, {"Cache-Control": "no-cache"})
        vendors = [v for v in mapping.get("vendor", []) if v["vendor-id"] == vendor_id]
        if not vendors:
            raise not_found(f"vendor={vendor_id}")
        schema_node(node_path + "/vendor")  # the path exists in the module
        value = prune_depth(vendors, query.depth) if query.depth is not None else vendors
        return RestconfResponse(200, {VENDOR: value}, {"Cache-Control": "no-cache"})

    def _mapping_post(self, client: ClientRecord, stored: dict[str, Any] | None, body: Any) -> RestconfResponse:
        """Figure 30: POST on the client's dots-client with the whole mapping; 201, or 409 when it has one."""
        if stored is not None:
            raise RestconfError("data-exists", "this DOTS client already has a vendor-mapping: use PUT to change it")
        mapping = self._checked(_member(body, MAPPING))
        self._commit(Changes(client.cuid, vendor_mapping=mapping))
        location = f"/restconf/data/{ROOT}/dots-client={client.cuid}/{MAPPING}"
        return RestconfResponse(201, headers={"Location": location})

    def _mapping_put(
        self, client: ClientRecord, path: DataPath, body: Any, stored: dict[str, Any] | None
    ) -> RestconfResponse:
        vendor_id = _vendor_id(path.inner)
        if vendor_id is None:
            mapping = self._checked(_member(body, MAPPING))
            self._commit(Changes(client.cuid, vendor_mapping=mapping))
            return RestconfResponse(201 if stored is None else 204)
        entries = _member(body, VENDOR)
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            raise RestconfError("invalid-value", f"a PUT on vendor={vendor_id} carries exactly one '{VENDOR}' entry")
        if entries[0].get("vendor-id") != vendor_id:
            raise RestconfError("invalid-value", f"the body's vendor-id must be {vendor_id}, the key in the path")
        others = [v for v in (stored or {}).get("vendor", []) if v["vendor-id"] != vendor_id]
        existed = len(others) != len((stored or {}).get("vendor", []))
        mapping = self._checked({"vendor": [*others, entries[0]]})
        self._commit(Changes(client.cuid, vendor_mapping=mapping))
        return RestconfResponse(204 if existed else 201)

    def _mapping_delete(self, client: ClientRecord, path: DataPath, stored: dict[str, Any] | None) -> RestconfResponse:
        if stored is None:
            raise not_found("vendor-mapping")
        vendor_id = _vendor_id(path.inner)
        if vendor_id is None:
            self._commit(Changes(client.cuid, clear_vendor_mapping=True))
            return RestconfResponse(204)
        kept = [v for v in stored.get("vendor", []) if v["vendor-id"] != vendor_id]
        if len(kept) == len(stored.get("vendor", [])):
            raise not_found(f"vendor={vendor_id}")
        self._commit(Changes(client.cuid, vendor_mapping={"vendor": kept}))
        return RestconfResponse(204)

    def _checked(self, mapping: Any) -> dict[str, Any]:
        """MAPPING validated against ietf-dots-mapping (400 with the module's error-tag) and within the quota."""
        if isinstance(mapping, dict) and isinstance(mapping.get("vendor"), list):
            count = sum(
                len(v.get("attack-mapping", []))
                for v in mapping["vendor"]
                if isinstance(v, dict) and isinstance(v.get("attack-mapping", []), list)
            )
            if count > self.settings.max_attack_mappings:
                raise RestconfError(
                    "resource-denied",
                    f"{count} attack mappings: this DOTS server keeps at most {self.settings.max_attack_mappings}"
                    " per client",
                    status=413,
                )
        try:
            return validate_vendor_mapping(mapping)
        except ModelError as error:
            raise RestconfError(error.error_tag, error.message, status=400, path=error.path) from None


def mapping_path(steps: tuple[Step, ...]) -> tuple[Step, ...] | None:
    """The steps below a 'vendor-mapping' node when STEPS start with it, else None."""
    if steps and steps[0] == Step("vendor-mapping"):
        return steps[1:]
    return None


def _vendor_id(inner: tuple[Step, ...]) -> int | None:
    if not inner:
        return None
    (step, *rest) = inner
    if step.name != "vendor" or step.keys is None or len(step.keys) != 1 or rest or not step.keys[0].isdigit():
        raise RestconfError("invalid-value", "expected vendor=<vendor-id> below vendor-mapping", status=400)
    return int(step.keys[0])


def _member(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or list(body) != [name]:
        raise RestconfError("invalid-value", f"the body must be a '{name}' object and nothing else")
    return body[name]
