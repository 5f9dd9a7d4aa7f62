"""RFC 9066 §5.2.2 over real (D)TLS sessions: a provider redirects the CPE to an alternate Call Home DOTS client
(`alt-ch-client`, `alt-ch-client-record`, `ttl`); the CPE answers 2.01, closes the session, dials the alternate
(whose certificate must carry the alt-ch-client name) and, once the TTL is over and no attack is being mitigated,
goes back to the provider it was provisioned with (RFC 9132 §4.6). A redirection it cannot service gets 4.00."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiocoap
import cbor2
import pytest

from opendots.callhome.cpe import start_cpe
from opendots.config import ClientAuthorization
from opendots.mitigate.base import LoggingMitigator
from opendots.model.convert import json_to_cbor
from tests.helpers.callhome import FAST, HOME_PREFIX, cpe_config, cuid_of, start_provider, until

pytestmark = pytest.mark.parametrize("transport", ["tls", "dtls"])
REDIRECTED = "ietf-dots-signal-channel:redirected-signal"


@contextlib.asynccontextmanager
async def _pair(pki_dir: Path, tmp_path: Path, transport: str):  # type: ignore[no-untyped-def]
    """The provisioned provider on 127.0.0.1, the alternate (certificate `other`) on 127.0.0.2 on the same port
    (a redirection names no port), the CPE dialing the first; all stopped at the end."""
    provider, address = await start_provider(pki_dir, transport)
    alternate, _ = await start_provider(pki_dir, transport, stem="other", host="127.0.0.2", port=address.port)
    config = cpe_config(pki_dir, tmp_path)
    config.clients.append(
        ClientAuthorization(name="isp2", cuid=cuid_of(pki_dir / "other.crt"), prefixes=(HOME_PREFIX,))
    )
    mitigator = LoggingMitigator()
    cpe = await start_cpe(config, [address], mitigator=mitigator, policy=FAST)
    try:
        yield provider, alternate, cpe, mitigator
    finally:
        await cpe.stop()
        await provider.stop()
        await alternate.stop()


async def test_a_redirected_cpe_dials_the_alternate_which_can_then_ask_it_to_mitigate_rfc9066_5_2_2(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    async with _pair(pki_dir, tmp_path, transport) as (provider, alternate, cpe, mitigator):
        await provider.wait_for("home")
        answer = await provider.redirect("home", "other", ["127.0.0.2"])
        assert answer.code == "2.01", answer
        await alternate.wait_for("home")
        await until(lambda: "home" not in provider.sessions)
        assert cpe.dialers[0].dialed is not None and cpe.dialers[0].dialed.host == "127.0.0.2"
        put = await alternate.mitigate("home", 1, source_prefixes=["192.0.2.5/32"], target_prefixes=["203.0.113.5/32"])
        assert put.code == "2.01", put
        await until(lambda: mitigator.active)


async def test_after_the_ttl_the_cpe_goes_back_to_its_provisioned_provider_rfc9132_4_6(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    async with _pair(pki_dir, tmp_path, transport) as (provider, alternate, cpe, _):
        first = await provider.wait_for("home")
        assert (await provider.redirect("home", "other", ["127.0.0.2"], ttl=1)).code == "2.01"
        await alternate.wait_for("home")
        await provider.wait_for("home", timeout=15, previous=first)  # TTL over, no attack: back home
        await until(lambda: "home" not in alternate.sessions)
        assert cpe.dialers[0].redirect is None


async def test_an_alternate_whose_certificate_lacks_the_alt_ch_client_name_is_not_accepted(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    async with _pair(pki_dir, tmp_path, transport) as (provider, alternate, cpe, _):
        await provider.wait_for("home")
        assert (await provider.redirect("home", "alt.example", ["127.0.0.2"], ttl=30)).code == "2.01"
        await until(lambda: cpe.dialers[0].failures >= 1)  # the handshake with 127.0.0.2 fails: wrong name
        assert "alt.example" in (cpe.dialers[0].last_error or ""), cpe.dialers[0].last_error
        assert "home" not in alternate.sessions


async def test_a_redirection_the_cpe_cannot_service_gets_4_00_and_the_session_stays_rfc9066_5_2_2(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    async with _pair(pki_dir, tmp_path, transport) as (provider, _alternate, cpe, _):
        session = await provider.wait_for("home")
        base = {REDIRECTED: {"ietf-dots-call-home:alt-ch-client": "other", "alt-server": "x.example"}}
        answer = await provider.request("home", aiocoap.PUT, ("redirect",), base)
        assert answer.code == "4.00" and "alt-server" in (answer.diagnostic or ""), answer
        records_only = cbor2.dumps(
            json_to_cbor({REDIRECTED: {"ietf-dots-call-home:alt-ch-client-record": ["127.0.0.2"]}})
        )
        message = aiocoap.Message(code=aiocoap.PUT, uri_path=(".well-known", "dots", "redirect"), payload=records_only)
        message.opt.content_format = 271
        message.remote = session
        assert provider.endpoint is not None
        response = await provider.endpoint.context.request(message).response
        assert response.code == aiocoap.BAD_REQUEST and b"alt-ch-client" in response.payload
        wrong = await provider.request("home", aiocoap.GET, ("redirect",))
        assert wrong.code == "4.05"
        assert provider.sessions.get("home") is session and cpe.dialers[0].redirect is None
