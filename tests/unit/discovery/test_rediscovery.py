"""RFC 8973 §4: a live session's discovered peer is re-checked when the TTL of what found it, or the peer's
certificate, expires; the session is kept while discovery still names its peer (sans-I/O, driven by `now`)."""

from __future__ import annotations

from opendots.discovery.cache import DiscoveryCache
from opendots.discovery.records import DiscoveredServer, DiscoveryResult
from opendots.discovery.refresh import RETRY_AFTER, Peer, Rediscovery

PEER = Peer("example.net", "2001:db8::1", 5000, "dtls")


def _result(*servers: tuple[str, int, str], name: str = "example.net", ttl: float = 60.0) -> DiscoveryResult:
    return DiscoveryResult(
        [DiscoveredServer(address, port, transport, "signal", name, "dns", ttl) for address, port, transport in servers]
    )


def _armed(now: float = 1000.0, ttl: float = 60.0, certificate: float | None = None) -> Rediscovery:
    cache = DiscoveryCache()
    cache.store(_result(("2001:db8::1", 5000, "dtls"), ttl=ttl), now)
    rediscovery = Rediscovery()
    rediscovery.session_up(PEER, now, cache.expires_at(), certificate)
    return rediscovery


def test_nothing_is_due_before_the_ttl_of_the_discovered_information_expires_rfc8973_4() -> None:
    rediscovery = _armed(ttl=60.0)
    assert rediscovery.next_timer() == 1060.0
    assert rediscovery.due(1059.9) is None
    assert "TTL" in (rediscovery.due(1060.0) or "")


def test_a_peer_still_discovered_keeps_the_session_and_rearms_the_timer_at_the_new_ttl_rfc8973_4() -> None:
    rediscovery = _armed()
    rediscovery.started()
    assert rediscovery.due(5000.0) is None  # no second discovery while one runs
    decision = rediscovery.decide(_result(("2001:db8::9", 5000, "dtls"), ("2001:db8::1", 5000, "dtls")), 1060.0, 1180.0)
    assert decision.keep
    assert rediscovery.next_timer() == 1180.0


def test_a_peer_no_longer_discovered_means_moving_to_the_new_one_rfc8973_4() -> None:
    rediscovery = _armed()
    rediscovery.started()
    decision = rediscovery.decide(_result(("2001:db8::2", 5000, "dtls")), 1060.0, 1120.0)
    assert not decision.keep
    assert "no longer discovered" in decision.reason


def test_the_same_address_under_another_port_transport_or_name_is_another_peer_rfc8973_4_and_8() -> None:
    for servers, name in (
        ((("2001:db8::1", 5001, "dtls"),), "example.net"),
        ((("2001:db8::1", 5000, "tls"),), "example.net"),
        ((("2001:db8::1", 5000, "dtls"),), "other.example"),  # another reference identifier to verify
    ):
        rediscovery = _armed()
        rediscovery.started()
        assert not rediscovery.decide(_result(*servers, name=name), 1060.0, 1120.0).keep


def test_re_discovery_finding_nothing_keeps_the_working_session_and_tries_again_later() -> None:
    rediscovery = _armed()
    rediscovery.started()
    decision = rediscovery.decide(DiscoveryResult(notes=["dns: timeout"]), 1060.0, None)
    assert decision.keep
    assert rediscovery.next_timer() == 1060.0 + RETRY_AFTER
    assert rediscovery.due(1060.0 + RETRY_AFTER) is not None


def test_a_short_ttl_is_retried_on_its_own_period_not_after_the_full_retry_delay() -> None:
    rediscovery = _armed(ttl=10.0)  # a failed lookup (e.g. the resolver restarting) is retried 10 s later
    rediscovery.started()
    assert rediscovery.decide(DiscoveryResult(), 1010.0, None).keep
    assert rediscovery.next_timer() == 1020.0


def test_a_new_peer_that_cannot_be_reached_leaves_the_session_and_retries_later() -> None:
    rediscovery = _armed()
    rediscovery.started()
    assert not rediscovery.decide(_result(("2001:db8::2", 5000, "dtls")), 1060.0, 1120.0).keep
    rediscovery.move_failed(1070.0)
    assert rediscovery.next_timer() == 1070.0 + RETRY_AFTER


def test_the_peer_certificate_expiring_first_is_a_re_discovery_event_and_a_new_session_rfc8973_4() -> None:
    rediscovery = _armed(ttl=600.0, certificate=1100.0)
    assert rediscovery.next_timer() == 1100.0
    assert "certificate" in (rediscovery.due(1100.0) or "")
    rediscovery.started()
    # Even when discovery still names the peer, its expired certificate calls for a new handshake.
    assert not rediscovery.decide(_result(("2001:db8::1", 5000, "dtls")), 1100.0, 1700.0).keep


def test_a_session_without_a_discovered_peer_has_no_re_discovery_timer() -> None:
    rediscovery = Rediscovery()
    rediscovery.session_up(None, 1000.0, 1060.0, 1100.0)  # e.g. a redirection's alternate server (RFC 9132 §4.6)
    assert rediscovery.next_timer() is None
    assert rediscovery.due(10**9) is None
    rediscovery = _armed()
    rediscovery.session_down()
    assert rediscovery.next_timer() is None


def test_explicit_configuration_without_a_ttl_is_re_checked_only_at_certificate_expiry() -> None:
    rediscovery = Rediscovery()
    rediscovery.session_up(PEER, 1000.0, None, None)
    assert rediscovery.next_timer() is None
    rediscovery.session_up(PEER, 1000.0, None, 5000.0)
    assert rediscovery.next_timer() == 5000.0
