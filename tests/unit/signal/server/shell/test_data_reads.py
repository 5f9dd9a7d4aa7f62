"""What a signal request will read of the data channel, named before it is decided (opendots.signal.server.shell.
data_reads.request_keys): the aliases a mitigation request names (RFC 9132 §4.4.1.3) under the client's cuid, the
ACLs of its 'acl-list' (RFC 9133 §3.2.1) under the client's and the Uri-Path cuid, and for a GET the ACLs the held
mitigations name; nothing for what the core refuses without reading."""

from __future__ import annotations

from opendots.model import encode_signal
from opendots.signal.server.core import Request
from opendots.signal.server.shell.data_reads import request_keys
from tests.helpers.signal_harness import SCOPE

ACL_LIST = "ietf-dots-signal-control:acl-list"


def _none(cuid: str, mid: int | None) -> set[tuple[str, str]]:
    return set()


def _put(entry: dict, cuid: str = "c") -> Request:
    body = {SCOPE: {"scope": [{**entry, "lifetime": 60}]}}
    return Request("PUT", ("mitigate", f"cuid={cuid}", "mid=1"), peer="peer", payload=encode_signal(body))


def test_a_put_names_its_aliases_and_its_acls():
    request = _put({"alias-name": ["web", "mail"], ACL_LIST: [{"acl-name": "a", "activation-type": "immediate"}]})
    assert request_keys(request, _none) == {
        ("alias", "peer", "web"),
        ("alias", "peer", "mail"),
        ("acl", "peer", "a"),
        ("acl", "c", "a"),
    }
    assert request_keys(_put({"target-prefix": ["192.0.2.0/24"]}), _none) == set()


def test_a_get_names_the_acls_its_answer_shows():
    def held(cuid: str, mid: int | None) -> set[tuple[str, str]]:
        assert (cuid, mid) == ("c", None)
        return {("c", "a")}

    assert request_keys(Request("GET", ("mitigate", "cuid=c"), peer="peer"), held) == {
        ("acl", "c", "a"),
        ("acl", "peer", "a"),
    }


def test_what_the_core_refuses_unread_names_nothing():
    assert request_keys(Request("PUT", ("hb",), peer="peer"), _none) == set()
    assert request_keys(Request("PUT", ("mitigate", "cuid=c", "mid=1"), peer="peer", payload=b"\xff"), _none) == set()
    assert request_keys(Request("GET", ("mitigate", "mid=1"), peer="peer"), _none) == set()
    assert request_keys(Request("GET", ("mitigate", "cuid=c"), peer=None), _none) == set()


def test_telemetry_requests_name_the_aliases_of_their_targets_and_baselines():
    """RFC 9244 §8.2 pre-or-ongoing-mitigation targets and §7.3 baselines may name aliases (resolved like a
    mitigation request's, RFC 9132 §4.4.1.3)."""
    report = {"ietf-dots-telemetry:telemetry": {"pre-or-ongoing-mitigation": [{"target": {"alias-name": ["web"]}}]}}
    setup = {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"baseline": [{"id": 1, "alias-name": ["db"]}]}]}}
    tm = Request("PUT", ("tm", "cuid=c", "tmid=1"), peer="peer", body=report)
    tm_setup = Request("PUT", ("tm-setup", "cuid=c", "tsid=1"), peer="peer", body=setup)
    assert request_keys(tm, _none) == {("alias", "peer", "web")}
    assert request_keys(tm_setup, _none) == {("alias", "peer", "db")}
    assert request_keys(Request("PUT", ("config", "sid=1"), peer="peer", body=setup), _none) == set()


def test_notifications_name_the_acls_shown_to_observed_clients_only():
    """RFC 9133 §3.2.1: a notification shows the activation types of its mitigations' ACLs as they are now; the
    ACLs are named once per (client, cuid) of the batch, and none for a client nobody observes."""
    from opendots.signal.server.core import MitigationChanged
    from opendots.signal.server.shell.data_reads import notification_keys

    asked: list[tuple[str, str]] = []

    def shown(client: str, cuid: str) -> set[tuple[str, str]]:
        asked.append((client, cuid))
        return {(cuid, "a"), ("owner", "a")}

    events = [
        MitigationChanged("alice", "c1", 1, dict),
        MitigationChanged("alice", "c1", 2, dict),
        MitigationChanged("bob", "c2", 1, dict),
    ]
    assert notification_keys(events, lambda client: client == "alice", shown) == {
        ("acl", "c1", "a"),
        ("acl", "owner", "a"),
    }
    assert asked == [("alice", "c1")]
