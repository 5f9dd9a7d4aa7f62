"""The RFC 8783 data model (`ietf-dots-data-channel:dots-data`) as a yangson DataModel, built once.

The shipped YANG files stay untouched. Three statements of the published `ietf-dots-data-channel` module
reject the RFC's own examples under a strict YANG 1.1 evaluator, so at load time we derive a corrected *view*
of that one module (in a private temporary directory) and load it in front of the shipped files:

1. `when "derived-from(../../../../type, 'ietf-acl:ipv4-acl-type')"` (and ipv6) is false for an ACL whose
   type is exactly `ipv4-acl-type` (derived-from() excludes the identity itself) and for an ACL without a type,
   although `type` is optional (§7.2) and Figures 24/25/34/35 use exactly that type. View: the L3 container is
   allowed when the type is absent or derived-from-or-self the family's type.
2. `container fragment` and `container flags-bitmask` are non-presence containers with a mandatory child,
   which makes them mandatory in every ipv4/ipv6/tcp match (Figure 24 has no fragment). View: presence
   containers, so the mandatory child applies only when the container is given.
3. `when "../forwarding = 'ietf-acl:accept'"` compares an identityref with a prefixed literal, which an
   evaluator need not resolve (yangson does not), so `rate-limit` is never allowed (Figures 37/38). View:
   `derived-from-or-self(../forwarding, 'ietf-acl:accept')`.

The RFC's examples also write identityrefs without their module prefix (`"drop"`, `"ipv4-acl-type"`), which
RFC 7951 §6.8 requires; `normalize_identityrefs` adds the prefix when exactly one loaded module defines the
identity, before yangson validates. Stored and returned data use the canonical RFC 7951 form.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from yangson import DataModel
from yangson.datatype import IdentityrefType, UnionType
from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import (
    RawMemberError,
    RawTypeError,
    SchemaError,
    SemanticError,
    YangsonException,
    YangTypeError,
)
from yangson.schemanode import InternalNode, LeafListNode, LeafNode, SchemaNode

from opendots.errors import UsageError

YANG_DIR = Path(__file__).resolve().parent / "yang"
MODULE = "ietf-dots-data-channel"
NAMESPACE = f"urn:ietf:params:xml:ns:yang:{MODULE}"
ROOT = f"{MODULE}:dots-data"
ACL_MODULE = "ietf-access-control-list"

# (name, revision, features). ietf-interfaces must be implemented: an ACL leafref points into it. Only the ACL
# features whose prerequisites are enabled too (no eth, so none of the mixed-eth-* types).
_MODULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (MODULE, "2020-05-28", ()),
    (
        ACL_MODULE,
        "2019-03-04",
        ("match-on-ipv4", "match-on-ipv6", "match-on-tcp", "match-on-udp", "match-on-icmp", "ipv4", "ipv6"),
    ),
    ("ietf-packet-fields", "2019-03-04", ()),
    ("ietf-ethertypes", "2019-03-04", ()),
    ("ietf-inet-types", "2013-07-15", ()),
    ("ietf-yang-types", "2013-07-15", ()),
    ("ietf-interfaces", "2018-02-20", ()),
    # RFC 9244 §8.1.6: vendor attack mapping, augmenting dots-client, capabilities and dots-data.
    ("ietf-dots-mapping", "2022-06-20", ("dots-telemetry",)),
)

# (published text, corrected text, occurrences expected) — see the module docstring.
_ERRATA_VIEW: tuple[tuple[str, str, int], ...] = (
    (
        'when "derived-from(../../../../type, "',
        'when "not(../../../../type) or derived-from-or-self(../../../../type, "',
        2,
    ),
    ("container fragment {", 'container fragment {\n presence "match on fragments";', 2),
    ("container flags-bitmask {", 'container flags-bitmask {\n presence "match on TCP flags";', 1),
    (
        "when \"../forwarding = 'ietf-acl:accept'\"",
        "when \"derived-from-or-self(../forwarding, 'ietf-acl:accept')\"",
        1,
    ),
)


class ModelError(UsageError, ValueError):
    """A body does not conform to the data model. Carries the RESTCONF error-tag to answer with."""

    def __init__(self, error_tag: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.error_tag = error_tag
        self.message = message
        self.path = path


def yang_library() -> dict[str, Any]:
    """The RFC 7895 YANG library describing the module set the data channel implements."""
    modules = [
        {
            "name": name,
            "revision": revision,
            "namespace": f"urn:ietf:params:xml:ns:yang:{name}",
            "conformance-type": "implement",
            **({"feature": list(features)} if features else {}),
        }
        for name, revision, features in _MODULES
    ]
    return {"ietf-yang-library:modules-state": {"module-set-id": "opendots-data-channel-1", "module": modules}}


def errata_view_text() -> str:
    """The corrected text of ietf-dots-data-channel that yangson loads (see the module docstring)."""
    text = (YANG_DIR / f"{MODULE}@2020-05-28.yang").read_text()
    for old, new, expected in _ERRATA_VIEW:
        found = text.count(old)
        if found != expected:
            raise RuntimeError(f"{MODULE}: expected {expected}x {old!r}, found {found}: the shipped module changed")
        text = text.replace(old, new)
    return text


@cache
def data_model() -> DataModel:
    """The yangson model of the data channel (built on first use, ~0.1 s, then shared)."""
    # The view exists on disk only while yangson reads the modules (it parses them all when constructed).
    with tempfile.TemporaryDirectory(prefix="opendots-yang-") as directory:
        (Path(directory) / f"{MODULE}@2020-05-28.yang").write_text(errata_view_text())
        return DataModel(json.dumps(yang_library()), [directory, str(YANG_DIR)])


def schema_node(path: str) -> SchemaNode:
    """Schema node for a data path like `/ietf-dots-data-channel:dots-data/dots-client/acls/acl`."""
    node = data_model().get_data_node(path)
    if node is None:
        raise KeyError(path)
    return node


def _module_of(name: str, inherited: str) -> tuple[str, str]:
    if ":" in name:
        module, local = name.split(":", 1)
        return local, module
    return name, inherited


@cache
def _identity_modules() -> dict[str, tuple[str, ...]]:
    modules: dict[str, list[str]] = {}
    for name, module in data_model().schema_data.identity_adjs:
        modules.setdefault(name, []).append(module)
    return {name: tuple(mods) for name, mods in modules.items()}


def _qualify_identity(value: Any) -> Any:
    if isinstance(value, str) and ":" not in value:
        modules = _identity_modules().get(value, ())
        if len(modules) == 1:
            return f"{modules[0]}:{value}"
    return value


def _is_identityref(node: SchemaNode) -> bool:
    kind = getattr(node, "type", None)
    if isinstance(kind, UnionType):
        return any(isinstance(member, IdentityrefType) for member in kind.types)
    return isinstance(kind, IdentityrefType)


def normalize_identityrefs(node: SchemaNode, raw: Any, module: str = MODULE) -> Any:
    """Copy of RAW (instance data of NODE) with unprefixed identityref values qualified (RFC 7951 §6.8)."""
    if isinstance(node, LeafListNode) and _is_identityref(node) and isinstance(raw, list):
        return [_qualify_identity(item) for item in raw]
    if isinstance(node, LeafNode) and _is_identityref(node):
        return _qualify_identity(raw)
    if isinstance(raw, list):
        return [normalize_identityrefs(node, item, module) for item in raw]
    if isinstance(raw, dict) and isinstance(node, InternalNode):
        result = {}
        for member, value in raw.items():
            local, member_module = _module_of(member, module)
            child = node.get_data_child(local, member_module)
            result[member] = value if child is None else normalize_identityrefs(child, value, member_module)
        return result
    return raw


def _error_from(exception: YangsonException) -> ModelError:
    """Map a yangson exception onto a RESTCONF error-tag (RFC 8040 §7, RFC 8783 §6.1/§7.2)."""
    if isinstance(exception, RawMemberError):
        return ModelError("unknown-element", f"unknown member {exception.path}", str(exception.path))
    if isinstance(exception, RawTypeError):
        return ModelError("invalid-value", f"{exception.path}: {exception.message}", str(exception.path))
    if isinstance(exception, SchemaError):
        path = str(exception.instance.instance_route())
        if exception.tag == "missing-data":
            return ModelError("missing-attribute", f"{path}: {exception.message}", path)
        return ModelError("unknown-element", f"{path}: {exception.tag}: {exception.message}", path)
    if isinstance(exception, SemanticError | YangTypeError):
        path = str(exception.instance.instance_route())
        message = " ".join(str(exception.message or exception.tag).split())
        return ModelError("invalid-value", f"{path}: {message}", path)
    return ModelError("invalid-value", str(exception))


# yangson walks a list through a zipper whose every step copies the rest of the list, so validating a list of
# n entries costs O(n²). Entries of this module are independent (no leafref, must or unique crosses them), so
# they are validated one at a time, and any longer list inside an entry in slices of this many items.
VALIDATION_SLICE = 128


def validate_client(entry: dict[str, Any], content: ContentType = ContentType.config) -> dict[str, Any]:
    """Validate one `dots-client` list entry (config data) and return its canonical RFC 7951 form.

    The entry may hold only the aliases/ACLs being written: entries are independent in this module (no
    leafref or must crosses them), and key uniqueness across the stored entries is the caller's job.
    Work is linear in the size of the entry (see VALIDATION_SLICE).
    """
    shell = {member: value for member, value in entry.items() if member not in ("aliases", "acls")}
    result = _validate_pieces(shell, content)
    for container, list_name in (("aliases", "alias"), ("acls", "acl")):
        if container not in entry:
            continue
        value = entry[container]
        items = value.get(list_name) if isinstance(value, dict) else None
        if not isinstance(items, list) or set(value) != {list_name}:
            result[container] = _validate_pieces({**shell, container: value}, content)[container]
            continue
        result[container] = {list_name: [canonical_entry(list_name, item, shell, content) for item in items]}
    return result


def canonical_entry(
    list_name: str, item: Any, shell: dict[str, Any] | None = None, content: ContentType = ContentType.config
) -> dict[str, Any]:
    """One alias or ACL (LIST_NAME) validated on its own and returned in canonical form; SHELL: the client's
    own leaves (cuid, cdid) it is validated under."""
    container = "aliases" if list_name == "alias" else "acls"
    base = dict(shell or {"cuid": "-"})
    if not isinstance(item, dict):
        return _validate_pieces({**base, container: {list_name: [item]}}, content)[container][list_name][0]
    long_lists = [path for path in _list_paths(item) if len(_get(item, path)) > VALIDATION_SLICE]
    if not long_lists:
        return _validate_pieces({**base, container: {list_name: [item]}}, content)[container][list_name][0]
    # The entry with every long list cut to its first slice, then each further slice of each long list in turn.
    head = copy.copy(item)
    for path in long_lists:
        head = _replaced(head, path, _get(item, path)[:VALIDATION_SLICE])
    canonical = _validate_pieces({**base, container: {list_name: [head]}}, content)[container][list_name][0]
    for path in long_lists:
        items = _get(item, path)
        merged = list(_get(canonical, path))
        for offset in range(VALIDATION_SLICE, len(items), VALIDATION_SLICE):
            piece = _replaced(head, path, items[offset : offset + VALIDATION_SLICE])
            try:
                done = _validate_pieces({**base, container: {list_name: [piece]}}, content)
            except ModelError as error:
                raise _shifted(error, path[-1], offset) from None
            merged.extend(_get(done[container][list_name][0], path))
        canonical = _replaced(canonical, path, merged)
    return canonical


def canonical_entries(
    list_name: str, items: list[Any], shell: dict[str, Any] | None = None, content: ContentType = ContentType.config
) -> list[dict[str, Any] | ModelError]:
    """canonical_entry for each of ITEMS (or the ModelError it raises), validating VALIDATION_SLICE entries at a
    time: one yangson instance per entry would cost more for the wrapping than for the entry."""
    container = "aliases" if list_name == "alias" else "acls"
    base = dict(shell or {"cuid": "-"})
    results: list[dict[str, Any] | ModelError] = []
    for offset in range(0, len(items), VALIDATION_SLICE):
        batch = items[offset : offset + VALIDATION_SLICE]
        simple = all(
            isinstance(item, dict) and all(len(_get(item, path)) <= VALIDATION_SLICE for path in _list_paths(item))
            for item in batch
        )
        if simple:
            try:
                done = _validate_pieces({**base, container: {list_name: batch}}, content)
            except ModelError:
                pass  # found below, entry by entry, so that each entry gets its own answer
            else:
                results.extend(done[container][list_name])
                continue
        for item in batch:
            try:
                results.append(canonical_entry(list_name, item, base, content))
            except ModelError as error:
                results.append(error)
    return results


def _list_paths(value: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths (member names through containers) to every list or leaf-list value inside VALUE."""
    paths = []
    for member, child in value.items():
        if isinstance(child, list):
            paths.append((*prefix, member))
        elif isinstance(child, dict):
            paths.extend(_list_paths(child, (*prefix, member)))
    return paths


def _get(value: dict[str, Any], path: tuple[str, ...]) -> Any:
    for member in path:
        value = value[member]
    return value


def _replaced(value: dict[str, Any], path: tuple[str, ...], new: Any) -> dict[str, Any]:
    """A shallow copy of VALUE with the member at PATH replaced by NEW (containers on the way copied too)."""
    result = dict(value)
    result[path[0]] = new if len(path) == 1 else _replaced(value[path[0]], path[1:], new)
    return result


def _shifted(error: ModelError, member: str, offset: int) -> ModelError:
    """ERROR found in a slice starting at OFFSET: its positional index in MEMBER counted in the whole list."""

    def shift(text: str | None) -> str | None:
        if text is None:
            return None
        return re.sub(rf"/{re.escape(member)}/(\d+)", lambda m: f"/{member}/{int(m.group(1)) + offset}", text)

    return ModelError(error.error_tag, shift(error.message) or "", shift(error.path))


def _validate_pieces(entry: dict[str, Any], content: ContentType) -> dict[str, Any]:
    client_node = schema_node(f"/{ROOT}/dots-client")
    normalized = normalize_identityrefs(client_node, copy.deepcopy(entry))
    model = data_model()
    try:
        instance = model.from_raw({ROOT: {"dots-client": [normalized]}})
        instance.validate(ValidationScope.all, content)
    except YangsonException as error:
        raise _error_from(error) from None
    return instance.raw_value()[ROOT]["dots-client"][0]


def validate_capabilities(capabilities: dict[str, Any]) -> dict[str, Any]:
    """Validate a `capabilities` container (state data) and return its canonical form."""
    node = schema_node(f"/{ROOT}/capabilities")
    normalized = normalize_identityrefs(node, copy.deepcopy(capabilities))
    try:
        instance = data_model().from_raw({ROOT: {"capabilities": normalized}})
        instance.validate(ValidationScope.all, ContentType.all)
    except YangsonException as error:
        raise _error_from(error) from None
    return instance.raw_value()[ROOT]["capabilities"]


def is_config(node: SchemaNode) -> bool:
    return bool(getattr(node, "config", True))


@dataclass(frozen=True)
class ContentFilter:
    """RFC 8040 §4.8.1 `content`: which descendants of a resource a GET returns."""

    config: bool = True
    nonconfig: bool = True

    @classmethod
    def parse(cls, value: str | None) -> ContentFilter:
        if value in (None, "all"):
            return cls()
        if value == "config":
            return cls(nonconfig=False)
        if value in ("nonconfig", "non-config"):  # RFC 8783 Figure 30 spells it "non-config"
            return cls(config=False)
        raise ValueError(f"content must be config, nonconfig or all, not {value!r}")

    def apply(self, node: SchemaNode, raw: Any, module: str = MODULE) -> Any:
        """RAW (data of NODE) restricted to this content; list keys are kept so entries stay addressable.

        Returns None when nothing of RAW is selected.
        """
        if self.config and self.nonconfig:
            return raw
        if isinstance(raw, list) and isinstance(node, InternalNode):
            entries = [self.apply(node, item, module) for item in raw]
            return [entry for entry in entries if entry is not None] or None
        if isinstance(raw, dict) and isinstance(node, InternalNode):
            keys = {key[0] for key in getattr(node, "keys", None) or ()}
            result: dict[str, Any] = {}
            for member, value in raw.items():
                local, member_module = _module_of(member, module)
                child = node.get_data_child(local, member_module)
                if child is None:
                    continue
                if local in keys:
                    result[member] = value
                    continue
                if isinstance(child, InternalNode) and is_config(child):
                    selected = self.apply(child, value, member_module)
                    if selected not in (None, {}, []):
                        result[member] = selected
                elif is_config(child) == self.config:
                    result[member] = value
            keyed_only = keys and set(result) <= keys
            if keyed_only and self.nonconfig and not self.config and not _has_nonconfig_descendant(node):
                return None
            return result
        return raw if is_config(node) == self.config else None


def _has_nonconfig_descendant(node: SchemaNode) -> bool:
    if not is_config(node):
        return True
    if isinstance(node, InternalNode):
        return any(_has_nonconfig_descendant(child) for child in node.data_children())
    return False
