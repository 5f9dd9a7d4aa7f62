"""RFC 9066 Call Home over real (D)TLS sockets in one process: the CPE (Call Home DOTS server) dials the provider
(Call Home DOTS client), checks its certificate as a TLS client does, and then answers the provider's CoAP
requests with the signal server's core, store and mitigator."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import aiocoap
import pytest

from opendots.callhome.cpe import CallHomeServer, start_cpe
from opendots.callhome.provider import CallHomeError, CpePeer
from opendots.config import ClientAuthorization
from opendots.mitigate.base import LoggingMitigator
from opendots.pki.certs import TestPki
from tests.helpers.callhome import FAST, HOME_PREFIX, SCOPE, SOURCE, cpe_config, cuid_of, start_provider, until

pytestmark = pytest.mark.parametrize("transport", ["tls", "dtls"])


async def test_the_provider_puts_a_mitigation_with_source_prefix_and_the_cpe_stores_and_enforces_it_rfc9066_5_3_1(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    mitigator = LoggingMitigator()
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], mitigator=mitigator, policy=FAST)
    try:
        await provider.wait_for("home")
        answer = await provider.mitigate(
            "home", 7, source_prefixes=["192.0.2.66/32"], target_prefixes=["203.0.113.9/32"],
            source_port_ranges=["1024-2047"], source_icmp_type_ranges=[(8, 8)],
        )  # fmt: skip
        assert answer.code == "2.01", answer
        await until(lambda: mitigator.active)
        (scope,) = mitigator.active.values()
        assert [str(p) for p in scope.source_prefixes] == ["192.0.2.66/32"]
        assert [str(p) for p in scope.target_prefixes] == ["203.0.113.9/32"]
        status = await provider.status("home", 7)
        assert status.code == "2.05"
        entry = status.body[SCOPE]["scope"][0]
        assert entry[SOURCE] == ["192.0.2.66/32"] and entry["mid"] == 7
        assert entry["status"] in ("attack-mitigation-in-progress", "attack-successfully-mitigated")
        assert (await provider.withdraw("home", 7)).code == "2.02"
        await until(lambda: not mitigator.active)
    finally:
        await cpe.stop()
        await provider.stop()


async def test_a_source_prefix_outside_the_cpes_addresses_is_refused_by_the_provider_and_by_the_cpe(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], mitigator=LoggingMitigator(), policy=FAST)
    try:
        await provider.wait_for("home")
        with pytest.raises(CallHomeError, match="outside the prefixes of CPE"):
            await provider.mitigate("home", 1, source_prefixes=["198.51.100.1/32"], target_prefixes=["203.0.113.9/32"])
        provider.cpes = [CpePeer("home", provider.cpes[0].cuid, (ipaddress.ip_network("0.0.0.0/0"),))]
        answer = await provider.mitigate(
            "home", 1, source_prefixes=["198.51.100.1/32"], target_prefixes=["203.0.113.9/32"]
        )
        assert answer.code == "4.00" and "source-prefix 198.51.100.1/32" in answer.diagnostic
    finally:
        await cpe.stop()
        await provider.stop()


async def test_a_cpe_whose_certificate_the_provider_does_not_know_gets_no_session(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path, stem="other"), [address], policy=FAST)
    try:
        await until(lambda: len(provider.refused) >= 2)  # closed at once, and again after the re-dial
        assert {identity.common_name for identity in provider.refused} == {"other"}
        assert provider.sessions == {}
        await until(lambda: cpe.dialers[0].failures >= 1)
    finally:
        await cpe.stop()
        await provider.stop()


async def test_a_cpe_refuses_a_provider_whose_certificate_it_does_not_trust(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    foreign = TestPki(tmp_path / "foreign")
    foreign.issue_client("client")  # the right name, from a CA the CPE does not trust
    provider, address = await start_provider(pki_dir, transport, directory=tmp_path / "foreign")
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], policy=FAST)
    try:
        await until(lambda: cpe.dialers[0].failures >= 2)
        assert cpe.dialers[0].sessions == 0 and provider.sessions == {}
        assert "certificate" in (cpe.dialers[0].last_error or "").lower()
    finally:
        await cpe.stop()
        await provider.stop()


async def test_a_restarted_cpe_dials_again_and_still_holds_its_mitigations(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    config = cpe_config(pki_dir, tmp_path)
    cpe: CallHomeServer | None = await start_cpe(config, [address], mitigator=LoggingMitigator(), policy=FAST)
    try:
        first = await provider.wait_for("home")
        answer = await provider.mitigate(
            "home", 3, source_prefixes=["192.0.2.7/32"], target_prefixes=["203.0.113.9/32"]
        )
        assert answer.code == "2.01", answer
        await cpe.stop()
        cpe = None
        mitigator = LoggingMitigator()
        cpe = await start_cpe(config, [address], mitigator=mitigator, policy=FAST)
        await provider.wait_for("home", previous=first)
        status = await provider.status("home", 3)
        assert status.code == "2.05" and status.body[SCOPE]["scope"][0][SOURCE] == ["192.0.2.7/32"]
        await until(lambda: mitigator.active)  # enforced again after the restart
    finally:
        if cpe is not None:
            await cpe.stop()
        await provider.stop()


async def test_a_cpe_dialing_two_providers_keeps_their_mitigations_apart(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    """Each provider is a DOTS client of the CPE's core (RFC 9132 §4.4.1: a client sees only its own requests)."""
    first, first_address = await start_provider(pki_dir, transport)
    second, second_address = await start_provider(pki_dir, transport, stem="other")
    second_address = replace(second_address, server_name="other")
    config = cpe_config(pki_dir, tmp_path)
    config.clients.append(
        ClientAuthorization(name="isp2", cuid=cuid_of(pki_dir / "other.crt"), prefixes=(HOME_PREFIX,))
    )
    mitigator = LoggingMitigator()
    cpe = await start_cpe(config, [first_address, second_address], mitigator=mitigator, policy=FAST)
    try:
        await first.wait_for("home")
        await second.wait_for("home")
        put = await first.mitigate("home", 1, source_prefixes=["192.0.2.8/32"], target_prefixes=["203.0.113.9/32"])
        assert put.code == "2.01", put
        assert (await second.status("home", 1)).code == "4.04"
        assert (await first.status("home", 1)).code == "2.05"
        # The same target from other sources: another mitigation, not a conflict (source-aware overlap, RFC 9066).
        put = await second.mitigate("home", 1, source_prefixes=["192.0.2.9/32"], target_prefixes=["203.0.113.9/32"])
        assert put.code == "2.01", put
        await until(lambda: len(mitigator.active) == 2)
        assert {str(scope.client) for scope in mitigator.active.values()} == {"isp", "isp2"}
    finally:
        await cpe.stop()
        await first.stop()
        await second.stop()


async def test_a_cpe_refuses_a_provider_whose_certificate_names_someone_else_rfc6125(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    """Same CA, but the certificate says `other` where the CPE was told to dial `client`."""
    provider, address = await start_provider(pki_dir, transport, stem="other")
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], policy=FAST)
    try:
        await until(lambda: cpe.dialers[0].failures >= 2)
        assert cpe.dialers[0].sessions == 0 and provider.sessions == {}
        error = cpe.dialers[0].last_error or ""
        assert "not valid for 'client'" in error or "not 'client'" in error, error
    finally:
        await cpe.stop()
        await provider.stop()


async def test_the_provider_configures_the_session_and_the_cpe_sends_its_heartbeats_back_over_it_rfc9132_4_7(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    """Requests both ways over the one reversed session: the provider's PUT /config, the CPE's PUT /hb."""
    provider, address = await start_provider(pki_dir, transport)
    config = cpe_config(pki_dir, tmp_path)
    config.signal["heartbeat_interval_limits"] = [1, 3600]
    cpe = await start_cpe(config, [address], policy=FAST)
    try:
        await provider.wait_for("home")
        fast = {"heartbeat-interval": {"current-value": 1}}
        body = {"ietf-dots-signal-channel:signal-config": {"mitigating-config": fast, "idle-config": fast}}
        answer = await provider.request("home", aiocoap.PUT, ("config", "sid=1"), body)
        assert answer.code in ("2.01", "2.04"), answer
        before = provider.heartbeats_received
        await until(lambda: provider.heartbeats_received >= before + 2)
    finally:
        await cpe.stop()
        await provider.stop()


async def test_the_provider_keeps_one_session_per_cpe_the_newest(pki_dir: Path, tmp_path: Path, transport: str) -> None:
    """A second session from the same CPE certificate replaces the first, which the provider closes."""
    provider, address = await start_provider(pki_dir, transport)
    first = await start_cpe(cpe_config(pki_dir, tmp_path), [address], policy=FAST)
    second: CallHomeServer | None = None
    try:
        older = await provider.wait_for("home")
        await first.wait_connected()
        twin = replace(cpe_config(pki_dir, tmp_path), db=tmp_path / "twin.db")
        second = await start_cpe(twin, [address], policy=replace(FAST, backoff=30.0, max_backoff=30.0))
        await second.wait_connected()
        await until(lambda: provider.replaced >= 1 and provider.sessions.get("home") not in (None, older))
        assert len(provider.sessions) == 1
        await until(lambda: first.dialers[0].sessions >= 2)  # its session was closed: it noticed, and dialed again
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
        await provider.stop()
