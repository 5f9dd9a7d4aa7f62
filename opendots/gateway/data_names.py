"""The data channel through a client-domain DOTS gateway (RFC 8783 §3.3, RFC 8811 §2.3, RFC 9132 §4.4.1), sans-I/O:
what a downstream client's RESTCONF request becomes upstream, and what the upstream answer becomes for it.

Upstream the gateway is ONE data-channel client, under its own 'cuid' (as on the signal channel, where its clients'
mitigations are all its own): one registration, and every client's aliases and ACLs in it. To keep them apart each
client gets a prefix derived from its 'cuid' (`derive_prefix`; the gateway keeps it durably and picks another
derivation on the rare collision, opendots.store.gateway_names), put before its alias and ACL names upstream:
'web' of one client is `k3j5x7q2-web` upstream, of another `a7c2m4pq-web`. ACL names are at most 64 characters
(RFC 8519's 'name', used by ietf-dots-data-channel's 'acls'), so a client's are at most 64 - len(prefix).

Answers go back with the client's 'cuid' and names, and only what carries its prefix: another client's aliases and
ACLs are never shown. The signal relay renames 'alias-name' and 'acl-list' the same way (`signal_up`,
`signal_down`), so that an alias a client made on this gateway's data channel resolves in its mitigation requests.

What a client's request becomes (`plan`): Forward (renamed, sent upstream), Register (the gateway's one upstream
registration stands for it), Unregister and ClearOwn (its own entries deleted one by one upstream: a DELETE of the
whole list upstream would take the other clients' as well). A request that would replace the gateway's whole
registration or lists upstream (PUT of dots-client, PUT of 'aliases' or 'acls') becomes ReplaceOwn: the client's own
entries created, replaced and deleted one by one upstream, RFC 8040 §4.5's PUT on its part alone. Vendor mappings
(one per upstream client, RFC 9244 §8.1.6) are refused with 405.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from opendots.data.core.body import parse_body
from opendots.data.core.errors import RestconfError, not_found
from opendots.data.core.ordering import point_name
from opendots.data.core.paths import DataPath, Step, parse_data_path
from opendots.data.core.shapes import entries_of, members_of
from opendots.model import ModelError, decode_signal, encode_signal
from opendots.model.data_channel import MODULE, ROOT

TAG_LENGTH = 8  # base32 characters: 40 bits of the 'cuid' hash; collisions are resolved by the store
SEPARATOR = "-"
MAX_ACL_NAME = 64  # RFC 8519 'name' (string, length 1..64)
ENTRY_LISTS = {"alias": "aliases", "acl": "acls"}
DOTS_CLIENT = f"{MODULE}:dots-client"
DATA_PATH = f"/{ROOT}"
SIGNAL_SCOPE = "ietf-dots-signal-channel:mitigation-scope"
ACL_LIST = "ietf-dots-signal-control:acl-list"


class _Request(Protocol):
    @property
    def payload(self) -> bytes | None: ...
    @property
    def query(self) -> tuple[str, ...]: ...


_Relayed = TypeVar("_Relayed", bound=_Request)


def derive_prefix(cuid: str, attempt: int = 0) -> str:
    """The prefix of CUID's names upstream; ATTEMPT > 0: another one, when the first is another client's."""
    digest = hashlib.sha256(f"{cuid}\0{attempt}".encode()).digest()
    return base64.b32encode(digest).decode()[:TAG_LENGTH].lower() + SEPARATOR


@dataclass(frozen=True)
class Names:
    """One downstream client's names upstream."""

    cuid: str
    """The client's (its certificate's SPKI hash, RFC 9132 §4.4.1)."""
    prefix: str
    gateway_cuid: str

    @property
    def longest_acl_name(self) -> int:
        return MAX_ACL_NAME - len(self.prefix)

    def up(self, name: Any, kind: str) -> str:
        if not isinstance(name, str) or not name:
            raise RestconfError("invalid-value", f"an {kind} 'name' must be a non-empty string")
        if kind == "acl" and len(name) > self.longest_acl_name:
            raise RestconfError(
                "invalid-value",
                f"acl name {name[:64]!r} is too long: at most {self.longest_acl_name} characters through this DOTS "
                f"gateway (it adds {len(self.prefix)} to keep its clients' ACLs apart upstream; RFC 8519: 64)",
            )
        return self.prefix + name

    def down(self, name: Any) -> str | None:
        """The client's name for upstream NAME; None when NAME is not one of the client's."""
        if isinstance(name, str) and name.startswith(self.prefix) and len(name) > len(self.prefix):
            return name[len(self.prefix) :]
        return None


# --- what a request becomes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forward:
    """Send upstream (PATH below {+restconf}/data, percent-encoded), then `downstream_answer` the answer."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes | None


@dataclass(frozen=True)
class Register:
    """RFC 8783 §5.1: the client registers; upstream the gateway's one registration stands for it."""

    created: bool
    """The client was not registered: 201 (else 204, a PUT of an existing registration)."""


@dataclass(frozen=True)
class Unregister:
    """RFC 8783 §5.2: the client unregisters; its aliases and ACLs go (one by one) upstream."""


@dataclass(frozen=True)
class ClearOwn:
    """DELETE of the client's 'aliases' or 'acls': its own entries, one by one upstream."""

    container: str


@dataclass(frozen=True)
class ReplaceOwn:
    """RFC 8040 §4.5 PUT of the client's registration, or of its 'aliases' or 'acls': in each container of
    `entries` the client's entries upstream become exactly these (renamed, in body order), one by one: each
    created or replaced, its others deleted, the other clients' left alone."""

    entries: dict[str, list[dict[str, Any]]]
    """Container ('aliases', 'acls') -> the client's entries, renamed for upstream."""
    register: bool
    """A PUT of the whole registration: the gateway's upstream registration stands for it (made if needed)."""
    created: bool


Plan = Forward | Register | Unregister | ClearOwn | ReplaceOwn


def plan(
    method: str, raw_path: str, query: list[tuple[str, str]], body: bytes, content_type: str | None, names: Names,
    registered: bool,
) -> Plan:  # fmt: skip
    """What the client's request (RAW_PATH below {+restconf}/data) becomes upstream; RestconfError: the answer."""
    path = parse_data_path(raw_path)
    if path.kind in ("server-mapping", "client-mapping"):
        raise _not_supported("vendor attack mappings (RFC 9244 §8.1.6) are not relayed by a client-domain gateway")
    if path.kind in ("datastore", "dots-data", "capabilities"):
        if method == "POST" and path.kind == "dots-data":
            _check_registration(parse_body(method, content_type, body), names)
            if registered:
                raise RestconfError("data-exists", f"dots-client={names.cuid} is already registered", status=409)
            return Register(created=True)
        if method not in ("GET", "HEAD", "OPTIONS"):
            raise RestconfError("operation-not-supported", f"{method} is not allowed on {path.kind}")
        return Forward(method, raw_path, query, None)
    if path.cuid != names.cuid:
        # As directly: another client's data does not exist for this one.
        raise not_found(f"dots-client={path.cuid}")
    if path.kind == "client" and not path.inner and method == "PUT":
        entry = _check_registration(parse_body(method, content_type, body), names, replacing=True)
        replaced = {
            container: _entries_up(entry.get(f"{MODULE}:{container}", entry.get(container)), kind, names)
            for kind, container in ENTRY_LISTS.items()
        }
        return ReplaceOwn(replaced, register=True, created=not registered)
    if not registered:
        raise not_found(f"dots-client={names.cuid}")
    if method == "DELETE" and path.kind == "client" and not path.inner:
        return Unregister()
    if method == "DELETE" and path.kind in ENTRY_LISTS.values():
        return ClearOwn(path.kind)
    if method == "PUT" and path.kind in ENTRY_LISTS.values() and not path.inner:
        kind = "alias" if path.kind == "aliases" else "acl"
        container = members_of(parse_body(method, content_type, body), {path.kind})[path.kind]
        return ReplaceOwn({path.kind: _entries_up(container, kind, names)}, register=False, created=False)
    upstream_body = None
    if method in ("POST", "PUT", "PATCH"):
        document = parse_body(method, content_type, body)
        try:
            upstream_body = json.dumps(_renamed_request(document, names), separators=(",", ":")).encode()
        except RecursionError:
            raise RestconfError("malformed-message", "the body is nested too deeply", error_type="rpc") from None
    return Forward(method, upstream_path(path, names), _renamed_query(query, names), upstream_body)


def upstream_path(path: DataPath, names: Names) -> str:
    """PATH with the gateway's 'cuid' for the client's and the client's entry name prefixed."""
    steps: list[Step] = []
    for step in path.steps:
        if step.name == "dots-client" and step.keys:
            step = Step(step.name, (names.gateway_cuid,))
        elif step.name in ENTRY_LISTS and step.keys and len(steps) >= 2 and steps[-1].name == ENTRY_LISTS[step.name]:
            step = Step(step.name, (names.up(step.keys[0], step.name),))
        steps.append(step)
    segments = [
        step.name if step.keys is None else f"{step.name}={','.join(quote(key, safe='') for key in step.keys)}"
        for step in steps
    ]
    return f"/{MODULE}:" + "/".join(segments)


def _renamed_query(query: list[tuple[str, str]], names: Names) -> list[tuple[str, str]]:
    # RFC 8040 §4.8.6: 'point' names the ACL a new one goes before or after.
    return [(key, f"acl={quote(names.up(point_name(value, 'acl'), 'acl'), safe='')}" if key == "point" else value)
            for key, value in query]  # fmt: skip


def _renamed_request(document: Any, names: Names) -> Any:
    """A request body with the client's alias and ACL names prefixed and the gateway's 'cuid' for the client's."""
    if isinstance(document, list):
        return [_renamed_request(item, names) for item in document]
    if not isinstance(document, dict):
        return document
    renamed: dict[str, Any] = {}
    for key, value in document.items():
        local = key.rpartition(":")[2]
        if local in ENTRY_LISTS and isinstance(value, list):
            value = [_renamed_entry(entry, local, names) for entry in value]
        elif local == "cuid" and value == names.cuid:
            value = names.gateway_cuid
        elif local in ("vendor-mapping", "cdid"):
            raise _not_supported(f"'{local}' is not relayed by a client-domain DOTS gateway")
        else:
            value = _renamed_request(value, names)
        renamed[key] = value
    return renamed


def _renamed_entry(entry: Any, kind: str, names: Names) -> Any:
    if not isinstance(entry, dict):
        return entry  # the upstream server refuses it as it would directly
    return {**entry, "name": names.up(entry.get("name"), kind)}


def _check_registration(document: Any, names: Names, *, replacing: bool = False) -> dict[str, Any]:
    entries = document.get(DOTS_CLIENT) if isinstance(document, dict) else None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise RestconfError("invalid-value", f"a registration is one '{DOTS_CLIENT}' entry (RFC 8783 §5.1)")
    entry = entries[0]
    if entry.get("cuid") != names.cuid:
        raise RestconfError("access-denied", "a DOTS client registers its own cuid (its certificate's SPKI hash)")
    # A PUT replaces the registration with its aliases and ACLs (`ReplaceOwn`); a POST creates it, then them.
    lists = ENTRY_LISTS.values()
    allowed = {"cuid", *lists, *(f"{MODULE}:{c}" for c in lists)} if replacing else {"cuid"}
    extra = sorted(set(entry) - allowed)
    if extra:
        raise _not_supported(
            f"a registration through a client-domain DOTS gateway carries 'cuid', aliases and ACLs only, not {extra}"
            if replacing
            else f"a registration through a client-domain DOTS gateway carries 'cuid' only, not {extra}: "
            "create aliases and ACLs after registering (or PUT the registration with them)"
        )
    return entry


def _entries_up(container: Any, kind: str, names: Names) -> list[dict[str, Any]]:
    """The entries of an 'aliases' or 'acls' container value in a PUT body, renamed for upstream."""
    entries = entries_of(container, kind, wrapped=True)
    seen: set[str] = set()
    renamed = []
    for entry in entries:
        upstream = _renamed_request(entry, names)
        upstream["name"] = names.up(entry.get("name"), kind)
        if upstream["name"] in seen:
            raise RestconfError("invalid-value", f"{kind} {entry['name']!r} appears twice in the body")
        seen.add(upstream["name"])
        renamed.append(upstream)
    return renamed


def _not_supported(message: str) -> RestconfError:
    return RestconfError("operation-not-supported", message, status=405)


# --- what an answer becomes --------------------------------------------------------------------------------------


def downstream_body(document: Any, names: Names) -> Any:
    """An upstream answer as the client sees it: its 'cuid' for the gateway's, its names without their prefix, and
    nothing of the other clients (their aliases and ACLs dropped; other 'dots-client' entries too)."""
    if isinstance(document, list):
        return [downstream_body(item, names) for item in document]
    if not isinstance(document, dict):
        return document
    shown: dict[str, Any] = {}
    for key, value in document.items():
        local = key.rpartition(":")[2]
        if local in ENTRY_LISTS and isinstance(value, list):
            value = [_own_entry(entry, names) for entry in value if _own(entry, names)]
            if not value:
                continue  # as the server renders a client without any: no empty list
        elif key in ENTRY_LISTS.values() and isinstance(value, dict):
            value = downstream_body(value, names)
            if not value:
                continue  # inside a 'dots-client' entry, a client without any has no container
        elif local == "dots-client" and isinstance(value, list):
            value = [downstream_body(entry, names) for entry in value if _gateways(entry, names)]
        elif local == "cuid" and value == names.gateway_cuid:
            value = names.cuid
        else:
            value = downstream_body(value, names)
        shown[key] = value
    return shown


def _own(entry: Any, names: Names) -> bool:
    return isinstance(entry, dict) and names.down(entry.get("name")) is not None


def _own_entry(entry: dict[str, Any], names: Names) -> dict[str, Any]:
    return {**downstream_body(entry, names), "name": names.down(entry["name"])}


def _gateways(entry: Any, names: Names) -> bool:
    return isinstance(entry, dict) and entry.get("cuid") in (names.gateway_cuid, None)


def downstream_text(text: str, names: Names) -> str:
    """An error message, error-path or Location: the gateway's 'cuid' and the client's prefix taken out."""
    return text.replace(names.gateway_cuid, names.cuid).replace(quote(names.prefix, safe=""), "").replace(
        names.prefix, ""
    )  # fmt: skip


def downstream_errors(document: Any, names: Names) -> Any:
    return _strings(document, lambda text: downstream_text(text, names))


def _strings(document: Any, change: Callable[[str], str]) -> Any:
    if isinstance(document, str):
        return change(document)
    if isinstance(document, list):
        return [_strings(item, change) for item in document]
    if isinstance(document, dict):
        return {key: _strings(value, change) for key, value in document.items()}
    return document


def own_names(document: Any, container: str, names: Names) -> list[str]:
    """The upstream names of the client's entries in an upstream GET of CONTAINER ('aliases' or 'acls')."""
    return list(own_entries(document, container, names))


def own_entries(document: Any, container: str, names: Names) -> dict[str, dict[str, Any]]:
    """The client's entries (by upstream name) in an upstream GET of CONTAINER ('aliases' or 'acls')."""
    kind = "alias" if container == "aliases" else "acl"
    holder = document.get(f"{MODULE}:{container}") if isinstance(document, dict) else None
    entries = holder.get(kind) if isinstance(holder, dict) else None
    return {entry["name"]: entry for entry in entries or () if _own(entry, names)}


def entry_path(gateway_cuid: str, container: str, upstream_name: str) -> str:
    kind = "alias" if container == "aliases" else "acl"
    return f"{DATA_PATH}/dots-client={quote(gateway_cuid, safe='')}/{container}/{kind}={quote(upstream_name, safe='')}"


# --- the signal channel ------------------------------------------------------------------------------------------


def signal_up(body: Any, prefix: str) -> Any:
    """A mitigation request (decoded) with its 'alias-name's and RFC 9133 'acl-name's renamed as upstream."""
    return _signal(body, lambda name: prefix + name if isinstance(name, str) else name, keep=lambda name: True)


def signal_down(body: Any, prefix: str) -> Any:
    """An upstream answer (decoded) with the client's 'alias-name's and 'acl-name's as it named them (others'
    dropped: a conflict with another client's ACL does not name it)."""
    return _signal(
        body,
        lambda name: name[len(prefix) :] if isinstance(name, str) and name.startswith(prefix) else name,
        keep=lambda name: isinstance(name, str) and name.startswith(prefix),
    )


def _signal(body: Any, rename: Callable[[Any], Any], keep: Callable[[Any], bool]) -> Any:
    if isinstance(body, list):
        return [_signal(item, rename, keep) for item in body]
    if not isinstance(body, dict):
        return body
    changed: dict[str, Any] = {}
    for key, value in body.items():
        local = key.rpartition(":")[2]
        if local == "alias-name" and isinstance(value, list):
            value = [rename(name) for name in value if keep(name)]
        elif local == "acl-name":
            value = rename(value)
        elif local == "acl-list" and isinstance(value, list):
            value = [_signal(item, rename, keep) for item in value if not isinstance(item, dict)
                     or keep(item.get("acl-name"))]  # fmt: skip
        else:
            value = _signal(value, rename, keep)
        changed[key] = value
    return changed


def renamed_inbound(inbound: _Relayed, prefix: str) -> _Relayed:
    """A relayed mitigation request (opendots.gateway.relay.Inbound) with the client's names as upstream: in the
    body, and in an 'alias-name' Uri-Query filter (RFC 9244 §8.2, comma-separated values)."""
    payload = inbound.payload
    if payload:
        with contextlib.suppress(ModelError, ValueError, RecursionError):  # the upstream server refuses it then
            payload = encode_signal(signal_up(decode_signal(payload), prefix), validate=False)
    query = tuple(
        "alias-name=" + ",".join(prefix + name for name in option.partition("=")[2].split(","))
        if option.startswith("alias-name=")
        else option
        for option in inbound.query
    )
    return replace(inbound, payload=payload, query=query)
