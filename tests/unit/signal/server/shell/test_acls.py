"""RFC 9133 filter control in mitigation requests, sans I/O: the signal core and the data channel's service on one
real SQLite file, driven with the RFC's §4 examples (cuids replaced by our test client's)."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ServerConfig
from opendots.data.records import DataChannelQuery
from opendots.signal.server.core import Request, ServerSettings
from opendots.signal.server.core.filtering import AclActivation, acls_to_enforce
from opendots.signal.server.shell.acls import DataChannelAclControl
from opendots.store.signal import SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.acl_harness import (
    ACL_LIST,
    FIGURE_2,
    FIGURE_3,
    FIGURE_4,
    FIGURE_5,
    FIGURE_7_ACL,
    FIGURE_8,
    SCOPE,
    T0,
    Harness,
    harness,
)
from tests.helpers.signal_harness import SettledServer

__all__ = ["harness"]  # the fixture


def test_section_4_1_conflict_handling_deactivates_the_accept_list(harness: Harness):
    cuid = harness.cuid
    harness.rest("PUT", f"/dots-client={cuid}/acls/acl=an-accept-list", FIGURE_2, T0)
    created = harness.signal("PUT", 123, FIGURE_3, T0)
    assert (created.code, created.body) == ("2.01", FIGURE_4)
    harness.heard.clear()

    # Figure 5 under a new 'mid': the new request supersedes mid 123 (a new 'mid' is "Created" per RFC 9132
    # §4.4.1; RFC 9133's text says 2.04 for this step) and its body is "similar to Figure 4".
    changed = harness.signal("PUT", 124, FIGURE_5, T0 + 60)
    assert (changed.code, changed.body) == ("2.01", {SCOPE: {"scope": [{"mid": 124, "lifetime": 3600}]}})
    assert harness.activation("an-accept-list") == "deactivate"
    assert harness.heard == [cuid]  # the data channel's subscribers (the ACL enforcer) were told at once

    # GET over the signal channel replays the request, 'acl-list' included.
    got = harness.signal("GET", 124, None, T0 + 61)
    entry = got.body[SCOPE]["scope"][0]
    assert entry[ACL_LIST] == [{"acl-name": "an-accept-list", "activation-type": "deactivate"}]

    # Figure 6: the data channel shows the activation type the signal channel set; the lifetime was refreshed
    # at T0+60, so 59 minutes later 10080 - 59 = 10021 minutes are left, as in the RFC.
    reply = harness.rest("GET", f"/dots-client={cuid}/acls", None, T0 + 60 + 59 * 60)
    figure_6 = copy.deepcopy(FIGURE_2)
    figure_6["ietf-dots-data-channel:acls"]["acl"][0]["activation-type"] = "deactivate"
    figure_6["ietf-dots-data-channel:acls"]["acl"][0]["pending-lifetime"] = 10021
    assert _normalised(reply.body) == _normalised(figure_6)


def test_section_4_2_on_demand_activation_of_an_accept_list(harness: Harness):
    cuid = harness.cuid
    harness.rest(
        "PUT", f"/dots-client={cuid}/acls/acl=my-accept-list", {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]}, T0
    )
    acls = DataChannelQuery(harness.data.store, lambda: T0).acls_for(cuid)
    assert acls_to_enforce(acls, mitigating=True, now=T0) == []  # installed "deactivated"
    created = harness.signal("PUT", 4879, FIGURE_8, T0)
    assert (created.code, created.body) == ("2.01", {SCOPE: {"scope": [{"mid": 4879, "lifetime": 3600}]}})
    acls = DataChannelQuery(harness.data.store, lambda: T0).acls_for(cuid)
    assert [a.name for a in acls_to_enforce(acls, mitigating=False, now=T0)] == ["my-accept-list"]


def test_unknown_or_foreign_acl_names_are_refused_and_change_nothing(harness: Harness):
    other = next(c.cuid for c in harness.config.clients if c.name == "other")
    harness.register(other)
    harness.rest(
        "PUT",
        f"/dots-client={other}/acls/acl=my-accept-list",
        {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]},
        T0,
        other,
    )
    before = harness.data.store.dump()
    # 'other' has an ACL of that name; for our client it does not exist (§3.2.1: 4.04 Not Found).
    refused = harness.signal("PUT", 1, FIGURE_8, T0)
    assert refused.code == "4.04" and "my-accept-list" in (refused.diagnostic or "")
    assert harness.signal("GET", 1, None, T0).code == "4.04"  # no mitigation was created either
    assert harness.data.store.dump() == before
    assert harness.activation("my-accept-list", other) == "deactivate"


@pytest.mark.parametrize(
    "acl_list",
    [
        [{"activation-type": "immediate"}],
        [{"acl-name": "x", "activation-type": "sometimes"}],
        [{"acl-name": "x", "color": "red"}],
        [{"acl-name": "x"}, {"acl-name": "x"}],
        "x",
    ],
)
def test_malformed_acl_lists_get_4_00(harness: Harness, acl_list: Any):
    body = copy.deepcopy(FIGURE_8)
    body[SCOPE]["scope"][0][ACL_LIST] = acl_list
    assert harness.signal("PUT", 1, body, T0).code == "4.00"


def test_filter_control_in_an_idle_time_request_gets_4_00(harness: Harness):
    harness.rest(
        "PUT",
        f"/dots-client={harness.cuid}/acls/acl=my-accept-list",
        {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]},
        T0,
    )
    body = copy.deepcopy(FIGURE_8)
    body[SCOPE]["scope"][0]["trigger-mitigation"] = False  # preconfigured: no attack is ongoing
    refused = harness.signal("PUT", 1, body, T0)
    assert refused.code == "4.00"
    assert harness.activation("my-accept-list") == "deactivate"


def test_a_failed_update_is_5_03_with_the_failed_entry(harness: Harness, server_config: ServerConfig, tmp_path: Path):
    harness.rest(
        "PUT",
        f"/dots-client={harness.cuid}/acls/acl=my-accept-list",
        {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]},
        T0,
    )

    class ReadOnlyControl(DataChannelAclControl):
        def set_activation(self, activation: AclActivation, now: float) -> None:
            raise sqlite3.OperationalError("attempt to write a readonly database")

    harness.core.settings.acl_control = ReadOnlyControl(harness.data)
    failed = harness.signal("PUT", 4879, FIGURE_8, T0)
    assert failed.code == "5.03" and failed.max_age == 60
    # Figure 1's shape: the 'mid' and the ACL update that failed.
    assert failed.body == {
        SCOPE: {"scope": [{"mid": 4879, ACL_LIST: [{"acl-name": "my-accept-list", "activation-type": "immediate"}]}]}
    }
    assert harness.signal("GET", 4879, None, T0).code == "4.04"  # the client resends without 'acl-list'


def test_without_a_data_channel_acl_list_is_not_understood(server_config: ServerConfig, tmp_path: Path):
    core = SettledServer(
        ServerSettings(clients=server_config.clients), SqliteSignalStore(SqliteDatabase(tmp_path / "s.db")), T0
    )
    cuid = server_config.clients[0].cuid
    response, events = core.handle(Request("PUT", ("mitigate", f"cuid={cuid}", "mid=1"), peer=cuid, body=FIGURE_8), T0)
    assert response.code == "4.00" and events == []


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    """Identities (ACL type, forwarding) come back module-qualified: compare their local names."""
    text = json.dumps(body).replace('"ietf-access-control-list:', '"')
    return json.loads(text)


def test_an_acl_no_mitigator_can_enforce_gets_5_03_and_deactivation_still_works(harness: Harness):
    from opendots.mitigate.router import build_router
    from opendots.signal.server.shell.acls import AclEnforcer

    acl = {"ietf-dots-data-channel:acl": [FIGURE_7_ACL]}
    harness.rest("PUT", f"/dots-client={harness.cuid}/acls/acl=my-accept-list", acl, T0)
    enforcer = AclEnforcer(
        DataChannelQuery(harness.data.store, lambda: T0),
        build_router(harness.config),  # the logging actuator alone: it enforces no ACL
        harness.config.client_by_cuid,
        mitigating=lambda _: True,
        known_cuids=lambda: [],
    )
    harness.core.settings.acl_control = DataChannelAclControl(harness.data, enforcer)
    failed = harness.signal("PUT", 4879, FIGURE_8, T0)
    assert failed.code == "5.03" and "no configured mitigator can enforce" in (failed.diagnostic or "")
    assert failed.body[SCOPE]["scope"][0][ACL_LIST] == [{"acl-name": "my-accept-list", "activation-type": "immediate"}]
    assert harness.activation("my-accept-list") == "deactivate"  # nothing changed

    body = copy.deepcopy(FIGURE_8)
    body[SCOPE]["scope"][0][ACL_LIST] = [{"acl-name": "my-accept-list", "activation-type": "deactivate"}]
    assert harness.signal("PUT", 4880, body, T0).code == "2.01"  # stopping enforcement needs no mitigator


def test_a_change_made_over_the_data_channel_is_shown_and_notified(harness: Harness):
    from opendots.signal.server.core import MitigationChanged

    cuid = harness.cuid
    harness.rest("PUT", f"/dots-client={cuid}/acls/acl=an-accept-list", FIGURE_2, T0)
    assert harness.signal("PUT", 124, FIGURE_5, T0).code == "2.01"
    patch = {"ietf-dots-data-channel:acl": [{"name": "an-accept-list", "activation-type": "immediate"}]}
    harness.rest("PATCH", f"/dots-client={cuid}/acls/acl=an-accept-list", patch, T0 + 10)

    events = harness.core.acl_activation_changed(cuid, T0 + 10)
    assert [type(e) for e in events] == [MitigationChanged] and events[0].mid == 124
    notified = events[0].snapshot[SCOPE]["scope"][0]
    assert notified[ACL_LIST] == [{"acl-name": "an-accept-list", "activation-type": "immediate"}]
    got = harness.signal("GET", 124, None, T0 + 11).body[SCOPE]["scope"][0]
    assert got[ACL_LIST] == [{"acl-name": "an-accept-list", "activation-type": "immediate"}]
    # Another client's data-channel changes never notify this client's observers.
    other = next(c.cuid for c in harness.config.clients if c.name == "other")
    assert harness.core.acl_activation_changed(other, T0 + 12) == []
