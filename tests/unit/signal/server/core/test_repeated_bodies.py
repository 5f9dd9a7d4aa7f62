"""A mitigation PUT that repeats, byte for byte, the request the core holds for its mid (a refresh, a NON
retransmission) is not decoded again, and its store write leaves the stored request as it is. Nothing else may
change: the lifetime follows the bytes sent, authorization and aliases are checked anew, the store holds the same
row as after a full write, and a restart finds the refreshed lifetime."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from opendots.model import encode_signal
from opendots.signal.server.core import Request, StaticAliasDirectory, Targets
from opendots.signal.server.core import bodies as core_server
from opendots.store.signal import MitigationRecord, SignalChanges, SqliteSignalStore
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    NO_HEARTBEAT,
    SCOPE,
    T0,
    Harness,
    make_harness,
    mitigate_path,
    scope_body,
)

HOST = "2001:db8:6401::1/128"


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, session_defaults=NO_HEARTBEAT)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload the core decodes, in order."""
    seen: list[bytes] = []
    real = core_server.decode_signal

    def counting(payload: bytes, *args, **kwargs):
        seen.append(payload)
        return real(payload, *args, **kwargs)

    monkeypatch.setattr(core_server, "decode_signal", counting)
    return seen


def put_bytes(h: Harness, mid: int, payload: bytes, **kw) -> str:
    response, h.events = h.settle_request(
        Request("PUT", mitigate_path(ALPHA_CUID, mid), ALPHA_CUID, payload=payload, **kw), h.now
    )
    return response.code


def lifetime_seen(h: Harness, mid: int) -> int:
    response = h.get(mid)
    assert response.code == "2.05", response.diagnostic
    return response.body[SCOPE]["scope"][0]["lifetime"]


def stored_row(h: Harness, mid: int) -> tuple:
    (row,) = [r for r in h.dump()["signal_mitigations"] if r[1] == mid]
    return row


def test_a_byte_identical_refresh_is_not_decoded_again_and_renews_the_lifetime(harness: Harness, decodes: list):
    payload = encode_signal(scope_body(target_prefix=[HOST], lifetime=600))
    assert put_bytes(harness, 1, payload) == "2.01"
    assert decodes == [payload]
    harness.advance(500)
    assert lifetime_seen(harness, 1) == 100
    assert put_bytes(harness, 1, payload) == "2.04"
    assert decodes == [payload], "the repeated bytes were decoded again"
    assert lifetime_seen(harness, 1) == 600
    assert stored_row(harness, 1)[8] == harness.now + 600  # expires_at written by the renewal
    harness.advance(599)
    assert lifetime_seen(harness, 1) == 1  # not expired at the first lifetime's end
    other = encode_signal(scope_body(target_prefix=[HOST], lifetime=900))
    assert put_bytes(harness, 1, other) == "2.04"
    assert decodes == [payload, other]


def test_the_lifetime_follows_the_bytes_sent_when_a_client_alternates_between_two_bodies(harness: Harness):
    long = encode_signal(scope_body(target_prefix=[HOST], lifetime=3600))
    short = encode_signal(scope_body(target_prefix=[HOST], lifetime=60))
    assert put_bytes(harness, 1, long) == "2.01"
    assert put_bytes(harness, 1, short) == "2.04"
    assert lifetime_seen(harness, 1) == 60
    assert put_bytes(harness, 1, short) == "2.04"  # repeated: the request held must now be the short one
    assert lifetime_seen(harness, 1) == 60
    assert stored_row(harness, 1)[4:6] == ('{"target-prefix": ["2001:db8:6401::1/128"], "lifetime": 60}', 60)
    assert put_bytes(harness, 1, long) == "2.04"  # the first body again: its own lifetime, not the one held
    assert lifetime_seen(harness, 1) == 3600
    assert stored_row(harness, 1)[4:6] == ('{"target-prefix": ["2001:db8:6401::1/128"], "lifetime": 3600}', 3600)
    harness.restart()
    assert lifetime_seen(harness, 1) == 3600


def test_a_repeated_body_is_authorized_anew_after_the_client_loses_the_prefix(harness: Harness):
    payload = encode_signal(scope_body(target_prefix=[HOST], lifetime=600))
    assert put_bytes(harness, 1, payload) == "2.01"
    before = harness.dump()
    narrowed = replace(ALPHA, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))
    harness.server.set_clients([narrowed, BRAVO])
    response, _ = harness.settle_request(Request("PUT", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, payload=payload), T0)
    assert response.code == "4.00" and "2001:db8:6401::1/128" in (response.diagnostic or "")
    assert harness.dump() == before


def test_a_repeated_body_naming_an_alias_gets_the_alias_as_it_is_now(tmp_path: Path):
    web = {"alpha": {"web": Targets(target_prefixes=(ipaddress.ip_network("192.0.2.128/25"),))}}
    aliases = StaticAliasDirectory(web)
    h = make_harness(tmp_path, session_defaults=NO_HEARTBEAT, aliases=aliases)
    payload = encode_signal(scope_body(alias_name=["web"], lifetime=600))
    assert put_bytes(h, 1, payload) == "2.01"
    web["alpha"]["web"] = Targets(target_prefixes=(ipaddress.ip_network("192.0.2.0/25"),))
    assert put_bytes(h, 1, payload) == "2.04"
    (held,) = h.server.mitigations()
    assert [str(p) for p in held.targets.target_prefixes] == ["192.0.2.0/25"]
    assert [type(e).__name__ for e in h.events] == ["MitigationUpdated"]


def test_an_efficacy_update_between_two_identical_refreshes_keeps_its_attack_status(harness: Harness):
    payload = encode_signal(scope_body(target_prefix=[HOST], lifetime=600))
    assert put_bytes(harness, 1, payload) == "2.01"
    efficacy = encode_signal(scope_body(target_prefix=[HOST], lifetime=300, attack_status="under-attack"))
    assert put_bytes(harness, 1, efficacy, if_match_empty=True) == "2.04"
    assert stored_row(harness, 1)[5] == 300 and stored_row(harness, 1)[10] == 1
    harness.advance(10)
    assert put_bytes(harness, 1, payload) == "2.04"
    assert stored_row(harness, 1)[4:6] == ('{"target-prefix": ["2001:db8:6401::1/128"], "lifetime": 600}', 600)
    assert stored_row(harness, 1)[10] == 1  # the attack status the client reported stays
    assert lifetime_seen(harness, 1) == 600
    harness.restart()
    assert lifetime_seen(harness, 1) == 600


def test_a_body_from_an_unknown_peer_is_refused_before_it_is_decoded(harness: Harness, decodes: list):
    response, _ = harness.settle_request(Request("PUT", mitigate_path("nobody", 1), "nobody", payload=b"\xff"), T0)
    assert response.code == "4.01"
    assert decodes == []
    response, _ = harness.settle_request(Request("PUT", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, payload=b"\xff"), T0)
    assert response.code == "4.00" and decodes == [b"\xff"]
    response, _ = harness.settle_request(Request("GET", mitigate_path(ALPHA_CUID, 1), ALPHA_CUID, payload=b"\xff"), T0)
    assert response.code == "4.00", "a malformed body is refused on every method, not only PUT"


def _record(**changes) -> MitigationRecord:
    base = MitigationRecord("alpha", "c", 7, {"lifetime": 60, "target-prefix": ["192.0.2.0/24"]}, 60, 2, T0, T0 + 60)
    return replace(base, **changes)


@pytest.mark.parametrize(
    "renewed",
    [
        _record(lifetime=600, expires_at=T0 + 700),
        _record(lifetime=-1, expires_at=None, status=8, terminating_until=T0 + 120, attack_status=2),
        _record(mid=8),  # no row to renew: the whole row is written
    ],
)
@pytest.mark.parametrize("with_other_changes", [False, True])
def test_a_renewal_leaves_the_same_rows_as_a_full_write(tmp_path: Path, renewed, with_other_changes: bool):
    """The cheap statement must not be a different outcome: the same rows as INSERT OR REPLACE of the record."""
    dumps = []
    for name, changes in (
        ("full", SignalChanges(put_mitigations=[renewed])),
        ("renewal", SignalChanges(renewed_mitigations=[renewed])),
    ):
        store = SqliteSignalStore.open(tmp_path / f"{name}.db")
        store.apply(SignalChanges(put_mitigations=[_record()]))
        if with_other_changes:  # the multi-statement transaction instead of the single statement
            changes.delete_session_configs.append("nobody")
        store.apply(changes)
        dumps.append(store.dump())
        store.close()
    assert dumps[0] == dumps[1]
