"""The 2.04 of a refresh (RFC 9132 §4.4.1) shows the lifetime granted by that refresh, whatever the time since the
mitigation was created or last refreshed, capped by the server, -1 when indefinite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.signal_harness import NO_HEARTBEAT, SCOPE, make_harness, scope_body

HOST = "2001:db8:6401::1/128"


def lifetime_answered(response) -> int:
    assert response.code in ("2.01", "2.04"), response.diagnostic
    return response.body[SCOPE]["scope"][0]["lifetime"]


@pytest.mark.parametrize("elapsed", [0.0, 0.25, 17.6, 1799.999])
def test_a_refresh_answers_the_whole_lifetime_it_grants_however_long_after_the_last_rfc9132_4_4_1(
    tmp_path: Path, elapsed: float
) -> None:
    h = make_harness(tmp_path, session_defaults=NO_HEARTBEAT)
    body = scope_body(target_prefix=[HOST], lifetime=1800)
    assert lifetime_answered(h.put(1, body)) == 1800
    for _ in range(3):
        h.advance(elapsed)
        assert lifetime_answered(h.put(1, body)) == 1800
        get = h.get(1)
        assert get.body[SCOPE]["scope"][0]["lifetime"] == 1800  # what the ack said is what is held


def test_a_refresh_answers_the_servers_cap_and_an_indefinite_one_minus_one_rfc9132_4_4_1(tmp_path: Path) -> None:
    (tmp_path / "capped").mkdir()
    (tmp_path / "open").mkdir()
    capped = make_harness(tmp_path / "capped", session_defaults=NO_HEARTBEAT, max_lifetime=600, allow_indefinite=False)
    for lifetime in (-1, 99999, -1):
        capped.advance(3.3)
        assert lifetime_answered(capped.put(1, scope_body(target_prefix=[HOST], lifetime=lifetime))) == 600
    open_ended = make_harness(tmp_path / "open", session_defaults=NO_HEARTBEAT)
    body = scope_body(target_prefix=[HOST], lifetime=-1)
    assert lifetime_answered(open_ended.put(1, body)) == -1
    open_ended.advance(10**6)
    assert lifetime_answered(open_ended.put(1, body)) == -1
