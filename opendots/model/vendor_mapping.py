"""RFC 9244 §8.1.6 vendor attack mappings (`ietf-dots-mapping:vendor-mapping`), validated against the official
module as loaded in the data channel's yangson model.

A mapping is a list of vendors (key 'vendor-id'), each with its attack mappings (key 'attack-id'). The server's own
sits under `dots-data` (state data), a client's under its `dots-client` entry (configuration). yangson validates a
list in time quadratic in its length (see opendots.model.data_channel.VALIDATION_SLICE), so each vendor is
validated on its own and its attack mappings a slice at a time; key uniqueness across the pieces is checked here.
"""

from __future__ import annotations

import copy
from typing import Any

from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import YangsonException

from opendots.model.data_channel import ROOT, VALIDATION_SLICE, ModelError, _error_from, data_model

MAPPING_MODULE = "ietf-dots-mapping"
MAPPING = f"{MAPPING_MODULE}:vendor-mapping"


def validate_vendor_mapping(mapping: Any, *, server: bool = False) -> dict[str, Any]:
    """MAPPING (the value of a 'vendor-mapping' container) in canonical RFC 7951 form, or ModelError: the server's
    (SERVER, state data under dots-data) or a client's (configuration data under its dots-client)."""
    if not isinstance(mapping, dict) or set(mapping) - {"vendor"}:
        raise ModelError("unknown-element", f"'{MAPPING}' holds a 'vendor' list only")
    vendors = mapping.get("vendor", [])
    if not isinstance(vendors, list):
        raise ModelError("invalid-value", "'vendor' must be a list")
    canonical = []
    seen: set[Any] = set()
    for index, vendor in enumerate(vendors):
        if not isinstance(vendor, dict):
            raise ModelError("invalid-value", f"vendor/{index} is not an object")
        attacks = vendor.get("attack-mapping", [])
        if not isinstance(attacks, list):
            raise ModelError("invalid-value", f"vendor/{index}/attack-mapping must be a list")
        head = {**vendor, "attack-mapping": attacks[:VALIDATION_SLICE]}
        done = _validated(head, server)
        merged = list(done.get("attack-mapping", []))
        for offset in range(VALIDATION_SLICE, len(attacks), VALIDATION_SLICE):
            piece = {**vendor, "attack-mapping": attacks[offset : offset + VALIDATION_SLICE]}
            merged += _validated(piece, server).get("attack-mapping", [])
        ids = [attack["attack-id"] for attack in merged]
        if len(set(ids)) != len(ids):
            raise ModelError("invalid-value", f"vendor-id {done['vendor-id']}: an attack-id appears twice")
        if done["vendor-id"] in seen:
            raise ModelError("invalid-value", f"vendor-id {done['vendor-id']} appears twice")
        seen.add(done["vendor-id"])
        if merged or "attack-mapping" in done:
            done["attack-mapping"] = merged
        canonical.append(done)
    return {"vendor": canonical} if canonical or "vendor" in mapping else {}


def _validated(vendor: dict[str, Any], server: bool) -> dict[str, Any]:
    if not vendor.get("attack-mapping"):
        vendor = {name: value for name, value in vendor.items() if name != "attack-mapping"}
    mapping = {"vendor": [copy.deepcopy(vendor)]}
    raw = {ROOT: {MAPPING: mapping}} if server else {ROOT: {"dots-client": [{"cuid": "-", MAPPING: mapping}]}}
    try:
        instance = data_model().from_raw(raw)
        instance.validate(ValidationScope.all, ContentType.all if server else ContentType.config)
    except YangsonException as error:
        raise _error_from(error) from None
    value = instance.raw_value()[ROOT]
    return (value[MAPPING] if server else value["dots-client"][0][MAPPING])["vendor"][0]
