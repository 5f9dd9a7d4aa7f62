"""Which part of the mitigation table a request's decision may read or change, for the per-scope locks of several
nodes on one PostgreSQL database (opendots.store.postgres_scopes says why these locks are enough).

A PUT or DELETE on /mitigate: its owners (the authenticated peer and the Uri-Path 'cuid') and, for a PUT, the
request's literal target prefixes. Anything this cannot tell for sure is None (the whole table): a request naming an
alias (its prefixes are in the data channel), an FQDN or URI, a body that does not decode, a path that does not
parse. The core decides afterwards exactly as before; the scope only says which other decisions may run meanwhile.
"""

from __future__ import annotations

import ipaddress

from opendots.model import ModelError
from opendots.model.codec import cbor_to_json, load_cbor
from opendots.signal.server.core.messages import MITIGATION_SCOPE, Rejected, Request
from opendots.signal.server.core.paths import MitigatePath, parse_path
from opendots.store.postgres_scopes import WriteScope

_NAMED = ("alias-name", "target-fqdn", "target-uri")


def write_scope(request: Request) -> WriteScope | None:
    if request.method not in ("PUT", "DELETE") or request.peer is None:
        return None
    try:
        path = parse_path(request.path)
    except Rejected:
        return None
    if not isinstance(path, MitigatePath) or path.mid is None:
        return None
    owners = tuple(dict.fromkeys((f"peer {request.peer}", f"cuid {path.cuid}")))
    if request.method == "DELETE":  # a client withdraws its own mitigation: nothing of another client changes
        return WriteScope(owners)
    try:
        # Decoded without validation (the core validates it when it decides): a lock hint costs no second pass.
        body = request.body if request.payload is None else cbor_to_json(load_cbor(request.payload))[0]
        (entry,) = body[MITIGATION_SCOPE]["scope"]
        if any(name in entry for name in _NAMED):
            return None
        prefixes = tuple(ipaddress.ip_network(p, strict=False) for p in entry["target-prefix"])
    except (ModelError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return WriteScope(owners, prefixes) if prefixes else None
