"""A refresh repeating the held request (RFC 9132 §4.4.1) by the same authorized client is not checked against the
client's domain again, but an operator reload that narrows the domain is: the next refresh is refused (4.00)."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from opendots.signal.server.core import mitigation_requests
from tests.helpers.signal_harness import ALPHA, BRAVO, make_harness, scope_body

BODY = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    real = mitigation_requests.check_authorized

    def counting(client, targets):  # type: ignore[no-untyped-def]
        seen.append(client)
        return real(client, targets)

    monkeypatch.setattr(mitigation_requests, "check_authorized", counting)
    return seen


def test_refreshes_by_the_same_client_skip_the_domain_check_once_it_held_rfc9132_4_4_1(tmp_path: Path, checks):
    harness = make_harness(tmp_path)
    assert harness.put(1, BODY).code == "2.01"
    for _ in range(5):
        harness.now += 1
        assert harness.put(1, BODY).code == "2.04"
    assert checks == [ALPHA, ALPHA]  # the creation, the first refresh; then the held mitigation remembers it


def test_a_refresh_after_a_reload_narrowing_the_domain_is_refused_rfc9132_4_4_1(tmp_path: Path, checks):
    harness = make_harness(tmp_path)
    assert harness.put(1, BODY).code == "2.01"
    assert harness.put(1, BODY).code == "2.04"
    narrowed = dataclasses.replace(ALPHA, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))
    harness.server.set_clients([narrowed, BRAVO])
    response = harness.put(1, BODY)
    assert response.code == "4.00"
    assert "outside the prefixes" in (response.diagnostic or "")
