"""A client never sees, changes or learns of another client's mitigations or configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.server.core import MitigationChanged, Request, Status
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    SCOPE,
    Harness,
    figure,
    make_harness,
    mitigate_path,
    scope_body,
)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = make_harness(tmp_path)
    assert h.put(7, scope_body(target_prefix=["198.51.100.0/28"]), cuid=BRAVO_CUID, peer=BRAVO).code == "2.01"
    assert h.request("PUT", ("config", "sid=5"), peer=BRAVO, body=figure("figure23")).code == "2.01"
    return h


def test_alpha_cannot_read_bravos_mitigations(harness: Harness):
    for mid in (7, None):
        response = harness.get(mid, cuid=BRAVO_CUID, peer=ALPHA)
        assert response.code == "4.04"
        assert response.body is None
        # Same answer as for a cuid nobody uses: existence is not revealed.
        assert harness.get(mid, cuid="never-used-cuid-000000", peer=ALPHA).diagnostic == response.diagnostic


def test_alpha_get_all_lists_only_its_own(harness: Harness):
    assert harness.get(peer=ALPHA).code == "4.04"
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::1/128"])).code == "2.01"
    scopes = harness.get(peer=ALPHA).body[SCOPE]["scope"]
    assert [s["mid"] for s in scopes] == [1]


def test_alpha_cannot_withdraw_or_refresh_bravos_mitigation(harness: Harness):
    before = harness.dump()
    assert harness.delete(7, cuid=BRAVO_CUID, peer=ALPHA).code == "2.02"  # "does not exist" for alpha
    refresh = harness.put(7, scope_body(target_prefix=["198.51.100.0/28"]), cuid=BRAVO_CUID, peer=ALPHA)
    assert refresh.code == "4.09"  # CUID collision: alpha must pick its own cuid
    efficacy = harness.put(7, figure("figure16"), cuid=BRAVO_CUID, peer=ALPHA, if_match_empty=True)
    assert efficacy.code == "4.09"
    assert harness.dump() == before
    assert harness.get(7, cuid=BRAVO_CUID, peer=BRAVO).body[SCOPE]["scope"][0]["status"] == (
        "attack-mitigation-in-progress"
    )


def test_mitigation_in_alphas_cuid_namespace_is_invisible_to_bravo_even_with_bravos_identity(harness: Harness):
    assert harness.put(3, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    assert harness.get(3, cuid=ALPHA_CUID, peer=BRAVO).code == "4.04"


def test_session_configuration_is_per_client(harness: Harness):
    bravo = harness.request("GET", ("config",), peer=BRAVO).body
    alpha = harness.request("GET", ("config",), peer=ALPHA).body
    assert bravo != alpha
    assert harness.request("GET", ("config", "sid=5"), peer=ALPHA).code == "4.04"
    before = harness.dump()
    assert harness.request("DELETE", ("config", "sid=5"), peer=ALPHA).code == "4.04"
    assert harness.dump() == before


def test_notifications_name_only_the_owner(harness: Harness):
    events = harness.report_status(f"{BRAVO_CUID}/7", Status.ATTACK_STOPPED)
    assert [(type(e), e.client) for e in events] == [(MitigationChanged, "bravo")]
    # The shell re-renders "all mitigations" for observers through the core, with the observer's identity.
    assert harness.server.render_mitigations("alpha", BRAVO_CUID, None, (), harness.now).code == "4.04"
    assert harness.server.render_mitigations("bravo", BRAVO_CUID, None, (), harness.now).code == "2.05"


def test_unknown_peer_is_refused_everywhere(harness: Harness):
    before = harness.dump()
    for method, path in [
        ("GET", mitigate_path(BRAVO_CUID)),
        ("PUT", mitigate_path(BRAVO_CUID, 8)),
        ("DELETE", mitigate_path(BRAVO_CUID, 7)),
        ("GET", ("config",)),
        ("PUT", ("config", "sid=9")),
        ("DELETE", ("config",)),
        ("PUT", ("hb",)),
    ]:
        response, events = harness.settle_request(Request(method, path, peer="stranger-cuid-00000000"), harness.now)
        assert response.code == "4.01", (method, path)
        assert events == []
    assert harness.dump() == before
