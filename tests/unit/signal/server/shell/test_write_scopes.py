"""Which locks a mitigation request's decision takes with several nodes (opendots.signal.server.shell.write_scopes):
its owners and literal target prefixes, or the whole table whenever the request names what the shell cannot place
before the core decides (RFC 9132 §4.4.1.3: an alias, an FQDN, a URI) or does not parse."""

from __future__ import annotations

import ipaddress

from opendots.model import encode_signal
from opendots.signal.server.core import Request
from opendots.signal.server.shell.write_scopes import write_scope
from opendots.store.postgres_scopes import WriteScope
from tests.helpers.signal_harness import SCOPE


def _put(entry: dict, path: tuple[str, ...] = ("mitigate", "cuid=gw-c", "mid=3"), peer: str | None = "peer1"):
    return Request("PUT", path, peer=peer, payload=encode_signal({SCOPE: {"scope": [entry]}}))


def test_a_put_locks_its_peer_its_cuid_and_its_prefixes():
    request = _put({"target-prefix": ["192.0.2.1/24", "2001:db8::/32"], "lifetime": 60})
    assert write_scope(request) == WriteScope(
        ("peer peer1", "cuid gw-c"), (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32"))
    )


def test_a_delete_locks_only_its_owners():
    request = Request("DELETE", ("mitigate", "cuid=c", "mid=3"), peer="c")
    assert write_scope(request) == WriteScope(("peer c", "cuid c"))


def test_what_cannot_be_placed_before_deciding_takes_the_whole_table():
    assert write_scope(_put({"target-prefix": ["192.0.2.0/24"], "alias-name": ["web"]})) is None
    assert write_scope(_put({"target-fqdn": ["www.example.com"]})) is None
    assert write_scope(_put({"target-uri": ["http://example.com/"]})) is None
    assert write_scope(_put({"target-prefix": ["192.0.2.0/24"]}, peer=None)) is None
    assert write_scope(_put({"target-prefix": ["192.0.2.0/24"]}, path=("mitigate", "cuid=c"))) is None
    assert write_scope(Request("PUT", ("mitigate", "cuid=c", "mid=1"), peer="c", payload=b"\xff")) is None
    assert write_scope(Request("GET", ("mitigate", "cuid=c"), peer="c")) is None
