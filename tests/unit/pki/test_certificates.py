"""A refused certificate on the signal channel says which check failed and what was expected (RFC 9132 §8: mutual
X.509 authentication), on both sides, and the server logs refused handshakes without flooding its log."""

from __future__ import annotations

import logging
import time

from cryptography import x509

from opendots.pki import verify
from opendots.pki.verify import _Refusals, explain
from opendots.transport.dtls import ConnectionClosed, DtlsConnection, client_context
from tests.helpers import tls_files as files
from tests.helpers.dtls_memory import Pair, connect


def _closed(events: list) -> str:
    (closed,) = [event for event in events if isinstance(event, ConnectionClosed)]
    return str(closed.error)


def test_a_server_certificate_with_another_name_is_reported_with_the_names_it_holds_and_the_one_expected(
    pki_dir,
    listener,
):
    pair = connect(pki_dir, listener, name="dots.example.net")
    message = _closed(pair.client_events)
    assert "the server certificate 'localhost' names localhost, 127.0.0.1, ::1, not 'dots.example.net'" in message
    assert "client.toml" not in message  # the transport alone cannot tell where the name came from


def test_a_refused_name_says_where_it_came_from_a_configured_server_name_or_an_rfc8973_discovery_source(
    pki_dir,
    listener,
):
    for source in ("server_name in client.toml", "RFC 8973 DNS S-NAPTR for dots.example.net"):
        context = client_context(files(pki_dir, "client"), "dots.example.net", source)
        message = _closed(connect(pki_dir, listener, context=context).client_events)
        assert f"not 'dots.example.net' ({source})" in message


def test_a_client_certificate_of_another_ca_is_explained_on_both_sides_and_logged_by_the_server(
    pki_dir,
    rogue_dir,
    listener,
    caplog,
    monkeypatch,
):
    monkeypatch.setattr(verify, "_refusals", verify._Refusals())  # no earlier refusal inside the interval
    context = client_context(files(rogue_dir, "client"), "localhost")
    context.load_verify_locations(str(pki_dir / "ca.crt"))  # only the server's check can stop it
    pair = Pair(listener, DtlsConnection.connect(context, now=time.monotonic()))
    with caplog.at_level(logging.WARNING, logger="opendots.pki.verify"):
        pair.pump()
    server_side = _closed(pair.server_events)
    # OpenSSL stops at the first link that fails: here the rogue CA above the client's certificate.
    assert "the client certificate 'OpenDOTS test CA'" in server_side and "not the CA of [tls] ca" in server_side
    assert "refused this client's certificate" in _closed(pair.client_events)
    assert any("refused a DTLS handshake" in record.getMessage() for record in caplog.records)


def test_refused_handshakes_are_logged_at_most_once_per_interval_with_a_count_of_the_rest(caplog):
    refusals = _Refusals()
    with caplog.at_level(logging.WARNING, logger="opendots.pki.verify"):
        for second in range(25):
            refusals.note("bad certificate", now=1000.0 + second * 0.5)  # 25 in 12 s
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2 and lines[1].endswith("(19 more since the last report)"), lines


def test_an_expired_certificate_says_when_it_expired(pki_dir):
    certificate = x509.load_pem_x509_certificate((pki_dir / "server.crt").read_bytes())
    later = certificate.not_valid_after_utc.timestamp() + 86400
    message = explain(certificate, 10, "server", "localhost", now=later)
    assert message.startswith("the server certificate 'localhost' expired on ")
    assert f"{certificate.not_valid_after_utc:%Y-%m-%d}" in message
