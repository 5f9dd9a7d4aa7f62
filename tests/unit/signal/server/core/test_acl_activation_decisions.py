"""RFC 9133 filter control under the core's contract: the core decides the ACL activation changes and returns them
in its Decision; the shell stores them (data channel first, then the signal store) before anything is answered or
applied, and a failed write answers 5.03 and changes nothing (RFC 9133 §3.2.1, Figure 1)."""

from __future__ import annotations

from typing import Any

from opendots.signal.server.core import Request
from opendots.signal.server.core.filtering import AclActivation
from opendots.signal.server.shell.durable import settle
from tests.helpers.acl_harness import ACL_LIST, FIGURE_7_ACL, FIGURE_8, SCOPE, T0, Harness, harness

__all__ = ["harness"]  # the fixture, shared with the RFC 9133 example tests

MID = 4879


def _install_deactivated_acl(harness: Harness) -> None:
    acl = {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]}
    harness.rest("PUT", f"/dots-client={harness.cuid}/acls/acl=my-accept-list", acl, T0)
    harness.heard.clear()


def _figure_8_request(harness: Harness) -> Request:
    return Request("PUT", ("mitigate", f"cuid={harness.cuid}", f"mid={MID}"), peer=harness.cuid, body=FIGURE_8)


def _stores(harness: Harness) -> tuple[dict[str, Any], dict[str, Any]]:
    return harness.data.store.dump(), harness.core.store.dump()


def test_the_core_returns_the_acl_activation_change_and_writes_nothing_itself(harness: Harness):
    _install_deactivated_acl(harness)
    before = _stores(harness)
    decision = harness.core.core.handle(_figure_8_request(harness), T0)
    assert decision.response is not None and decision.response.code == "2.01"
    assert decision.acl_activations == [AclActivation(harness.cuid, "my-accept-list", "immediate", MID)]
    assert _stores(harness) == before and harness.heard == []  # decided, nothing stored, nobody told
    assert harness.core.mitigations() == []

    response, _ = settle(harness.core.core, harness.core.store, decision, T0, harness.core.settings.acl_control)
    assert response is not None and response.code == "2.01"
    assert harness.activation("my-accept-list") == "immediate" and harness.heard == [harness.cuid]
    assert [m.record.mid for m in harness.core.mitigations()] == [MID]


def test_an_acl_change_the_store_refuses_is_5_03_naming_it_and_changes_nothing(harness: Harness):
    _install_deactivated_acl(harness)
    before = _stores(harness)
    connection = harness.core.store.database.connection  # one SQLite file for both channels, as the server runs
    connection.execute("PRAGMA query_only = ON")
    try:
        failed = harness.signal("PUT", MID, FIGURE_8, T0)
    finally:
        connection.execute("PRAGMA query_only = OFF")
    assert failed.code == "5.03" and failed.max_age == 60
    assert failed.body == {
        SCOPE: {"scope": [{"mid": MID, ACL_LIST: [{"acl-name": "my-accept-list", "activation-type": "immediate"}]}]}
    }
    assert _stores(harness) == before and harness.heard == []
    assert harness.core.mitigations() == []
    # The core is free to decide again, and the same request succeeds once the store works.
    assert harness.signal("GET", MID, None, T0).code == "4.04"
    assert harness.signal("PUT", MID, FIGURE_8, T0).code == "2.01"
    assert harness.activation("my-accept-list") == "immediate"


def test_a_request_refused_after_its_acl_list_was_checked_changes_no_acl(harness: Harness):
    _install_deactivated_acl(harness)
    assert harness.signal("PUT", MID, FIGURE_8, T0).code == "2.01"
    harness.signal("PUT", MID, FIGURE_8, T0)  # a refresh repeating 'acl-list': allowed
    before = harness.data.store.dump()
    # A lower 'mid' overlapping the held one is refused (4.09, RFC 9132 §4.4.1): its 'acl-list' must not apply.
    lower = {
        SCOPE: {
            "scope": [
                {
                    **FIGURE_8[SCOPE]["scope"][0],
                    ACL_LIST: [{"acl-name": "my-accept-list", "activation-type": "deactivate"}],
                }
            ]
        }
    }
    assert harness.signal("PUT", MID - 1, lower, T0 + 1).code == "4.09"
    assert harness.data.store.dump() == before
    assert harness.activation("my-accept-list") == "immediate"
