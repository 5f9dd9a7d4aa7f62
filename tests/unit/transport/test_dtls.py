"""The sans-I/O DTLS core, driven in memory: cookies, handshake, resumption, MTU, name checks, close_notify."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from opendots.transport.dtls import (
    ApplicationData,
    CloseNotifyReceived,
    ConnectionClosed,
    DtlsConnection,
    HandshakeCompleted,
    client_context,
    is_client_hello,
    is_one_application_record,
    pack_records,
    split_records,
)
from opendots.transport.dtls_listener import CookieSecrets, DtlsListener
from opendots.transport.profile import CIPHER_SUITES_TLS12, certificate_matches_name
from tests.helpers import tls_files as files
from tests.helpers.dtls_memory import PEER, Pair, connect


def test_handshake_goes_through_a_cookie_round_and_authenticates_both_sides(pki_dir, listener):
    pair = connect(pki_dir, listener)
    assert pair.hello_verify_requests == 1
    assert pair.client.established and pair.server is not None and pair.server.established
    (server_done,) = [e for e in pair.server_events if isinstance(e, HandshakeCompleted)]
    (client_done,) = [e for e in pair.client_events if isinstance(e, HandshakeCompleted)]
    assert server_done.identity.common_name == "client"
    assert "localhost" in client_done.identity.dns_names
    assert pair.client.cipher == CIPHER_SUITES_TLS12[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"

    pair.client.send(b"\x40\x01\x12\x34")
    events = [pair.server.receive_datagram(d, time.monotonic()) for d in pair.client.datagrams_to_send()]
    assert events == [[ApplicationData(b"\x40\x01\x12\x34")]]


def test_data_sent_during_the_handshake_is_delivered_after_it(pki_dir, listener):
    context = client_context(files(pki_dir, "client"), "localhost")
    client = DtlsConnection.connect(context, now=time.monotonic())
    client.send(b"early")
    pair = Pair(listener, client)
    pair.pump()
    assert ApplicationData(b"early") in pair.server_events


def test_session_resumption_skips_the_certificate_exchange(pki_dir, listener):
    context = client_context(files(pki_dir, "client"), "localhost")
    first = connect(pki_dir, listener, context=context)
    assert first.client.session is not None
    second = connect(pki_dir, listener, context=context, session=first.client.session)
    (done,) = [e for e in second.client_events if isinstance(e, HandshakeCompleted)]
    assert done.resumed
    assert second.server is not None and second.server.identity == first.server.identity


def test_handshake_flights_respect_the_configured_mtu(pki_dir):
    mtu = 300
    small = DtlsListener(files(pki_dir, "server"), now=time.monotonic(), mtu=mtu)
    context = client_context(files(pki_dir, "client"), "localhost")
    client = DtlsConnection.connect(context, now=time.monotonic(), mtu=mtu)
    pair = Pair(small, client)
    sizes: list[int] = []
    original = client.receive_datagram

    def spy(datagram: bytes, now: float):
        sizes.append(len(datagram))
        return original(datagram, now)

    client.receive_datagram = spy  # type: ignore[method-assign]
    pair.pump(20)
    assert client.established
    assert sizes and max(sizes) <= mtu
    assert len(sizes) > 3  # the certificate flight really had to be fragmented


def test_untrusted_client_certificate_fails_the_handshake_on_the_server(pki_dir, rogue_dir, listener):
    context = client_context(files(rogue_dir, "client"), "localhost")
    # The rogue client trusts the real CA so that only the server's check can stop it.
    context.load_verify_locations(str(pki_dir / "ca.crt"))
    pair = Pair(listener, DtlsConnection.connect(context, now=time.monotonic()))
    pair.pump()
    assert pair.server is not None and pair.server.closed
    (closed,) = [e for e in pair.server_events if isinstance(e, ConnectionClosed)]
    assert "certificate" in str(closed.error).lower()
    assert not pair.client.established


def test_client_rejects_a_server_certificate_with_another_name(pki_dir, listener):
    pair = connect(pki_dir, listener, name="dots.example.net")
    assert pair.client.closed
    assert any(isinstance(e, ConnectionClosed) for e in pair.client_events)


def test_client_accepts_an_ip_address_listed_in_the_certificate(pki_dir, listener):
    assert connect(pki_dir, listener, name="127.0.0.1").client.established
    assert not connect(pki_dir, listener, name="127.0.0.2").client.established


def test_close_notify_reaches_the_peer_as_an_event(pki_dir, listener):
    pair = connect(pki_dir, listener)
    pair.client.close()
    events = [e for d in pair.client.datagrams_to_send() for e in pair.server.receive_datagram(d, time.monotonic())]
    assert len(events) == 1 and isinstance(events[0].error, CloseNotifyReceived)
    assert pair.server.closed


def test_listener_ignores_anything_but_a_client_hello(listener):
    for garbage in (b"", b"\x17\xfe\xfd" + bytes(20), b"hello world", bytes(13) + b"\x01"):
        result = listener.receive(garbage, PEER, time.monotonic())
        assert result.reply == [] and result.connection is None


def test_cookie_is_bound_to_the_peer_address(pki_dir, listener):
    context = client_context(files(pki_dir, "client"), "localhost")
    client = DtlsConnection.connect(context, now=time.monotonic())
    (hello,) = client.datagrams_to_send()
    (verify_request,) = listener.receive(hello, PEER, time.monotonic()).reply
    client.receive_datagram(verify_request, time.monotonic())
    (hello_with_cookie,) = client.datagrams_to_send()
    assert is_client_hello(hello_with_cookie)
    replayed = listener.receive(hello_with_cookie, ("198.51.100.7", 40000), time.monotonic())
    assert replayed.connection is None and len(replayed.reply) == 1  # a fresh HelloVerifyRequest, no state
    accepted = listener.receive(hello_with_cookie, PEER, time.monotonic())
    assert accepted.connection is not None


def test_cookie_secret_rotation_keeps_one_previous_key():
    secrets = CookieSecrets(now=0.0, rotate_after=10.0)
    cookie = secrets.make(b"peer")
    secrets.rotate_if_due(5.0)
    assert secrets.verify(b"peer", cookie)
    secrets.rotate_if_due(10.0)
    assert secrets.verify(b"peer", cookie) and secrets.make(b"peer") != cookie
    secrets.rotate_if_due(20.0)
    assert not secrets.verify(b"peer", cookie)
    assert not secrets.verify(b"other", secrets.make(b"peer"))


def test_handshake_timer_retransmits_a_lost_flight(pki_dir):
    listener = DtlsListener(files(pki_dir, "server"), now=time.monotonic())
    context = client_context(files(pki_dir, "client"), "localhost")
    client = DtlsConnection.connect(context, now=time.monotonic())
    first = client.datagrams_to_send()  # "lost"
    due = client.timer_due_in()
    assert due is not None and 0 < due <= 1.0
    time.sleep(due + 0.01)
    client.handle_timer(time.monotonic())
    again = client.datagrams_to_send()
    # the same ClientHello, retransmitted in a record with the next sequence number
    assert len(again) == 1 and again[0][13:] == first[0][13:] and again[0][:11] != first[0][:11]
    assert listener.receive(again[0], PEER, time.monotonic()).reply


def test_records_are_split_and_packed_whole():
    records = [bytes([22, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2, "big") + body for body in (b"a" * 50,) * 5]
    assert split_records(b"".join(records)) == records
    packed = pack_records(records, 130)
    assert [len(d) for d in packed] == [126, 126, 63]
    assert b"".join(packed) == b"".join(records)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("other.example", False),
    ],
)
def test_certificate_name_matching(pki_dir, name, expected):
    certificate = x509.load_pem_x509_certificate((pki_dir / "server.crt").read_bytes())
    assert certificate_matches_name(certificate, name) is expected


def test_forged_or_garbled_records_on_an_established_session_are_dropped_silently(pki_dir, listener):
    pair = connect(pki_dir, listener)
    server, client = pair.server, pair.client
    now = time.monotonic()
    client.send(b"genuine")
    (genuine,) = client.datagrams_to_send()
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])  # bad AEAD tag
    truncated = genuine[:20]
    header_lies = genuine[:11] + (5000).to_bytes(2, "big") + genuine[13:]
    for forged in (b"\x17\xfe\xfd" + bytes(60), tampered, truncated, header_lies, bytes(range(200))):
        assert server.receive_datagram(forged, now) == []
        assert server.established
    assert server.receive_datagram(genuine, now) == [ApplicationData(b"genuine")]
    assert server.receive_datagram(genuine, now) == []  # a replayed record is dropped too (RFC 6347 §4.1.2.6)


class _CountingReads:
    """Stands in front of a pyOpenSSL connection and counts its recv calls."""

    def __init__(self, ssl) -> None:
        self._ssl, self.reads = ssl, 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self._ssl.recv(size)

    def __getattr__(self, name: str):
        return getattr(self._ssl, name)


def test_a_datagram_of_one_record_is_read_once_and_one_of_several_records_is_read_whole(pki_dir):
    # OpenSSL's read path (the client's, and the server's with OPENDOTS_DTLS_RECORD_LAYER=openssl)
    pair = connect(pki_dir, DtlsListener(files(pki_dir, "server"), now=time.monotonic(), own_record_layer=False))
    server, client = pair.server, pair.client
    counting = server._ssl = _CountingReads(server._ssl)
    now = time.monotonic()
    client.send(b"one")
    (single,) = client.datagrams_to_send()
    assert is_one_application_record(single)
    assert server.receive_datagram(single, now) == [ApplicationData(b"one")]
    assert counting.reads == 1  # no second read that could only fail
    for body in (b"two", b"three", b"four"):
        client.send(body)
    (packed,) = client.datagrams_to_send()  # three records in one datagram (RFC 6347 §4.1.1)
    assert not is_one_application_record(packed)
    assert server.receive_datagram(packed, now) == [ApplicationData(b) for b in (b"two", b"three", b"four")]
    assert counting.reads == 1 + 4
    assert not is_one_application_record(single[:-1]) and not is_one_application_record(single + b"\x00")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), cut=st.integers(min_value=0, max_value=400))
def test_listener_survives_mangled_client_hellos(pki_dir, body, cut):
    listener = _fuzz_listener(pki_dir)
    context = client_context(files(pki_dir, "client"), "localhost")
    (hello,) = DtlsConnection.connect(context, now=0.0).datagrams_to_send()
    for datagram in (hello[:14] + body, hello[: min(cut, len(hello))] + body, hello[:cut] + hello[cut + 1 :]):
        result = listener.receive(datagram, PEER, time.monotonic())  # must not raise
        assert result.connection is None  # without a valid cookie nothing is ever created
    # the listener still works afterwards
    assert listener.receive(hello, PEER, time.monotonic()).reply


_LISTENERS: dict[Path, DtlsListener] = {}


def _fuzz_listener(pki_dir: Path) -> DtlsListener:
    if pki_dir not in _LISTENERS:
        _LISTENERS[pki_dir] = DtlsListener(files(pki_dir, "server"), now=time.monotonic())
    return _LISTENERS[pki_dir]


def test_cleartext_budget_follows_the_mtu(pki_dir, listener):
    pair = connect(pki_dir, listener)
    assert pair.client.cleartext_budget == pair.client.cleartext_mtu <= 1232 - 13 - 16
    small = DtlsConnection.connect(client_context(files(pki_dir, "client"), "localhost"), now=0.0, mtu=576)
    assert small.cleartext_budget == 576 - 37


def test_coap_block_size_shrinks_with_a_small_mtu(pki_dir):
    from opendots.transport.dtls_interface import DtlsRemote

    def remote(mtu: int) -> DtlsRemote:
        context = client_context(files(pki_dir, "client"), "localhost")
        return DtlsRemote(None, DtlsConnection.connect(context, now=0.0, mtu=mtu), ("192.0.2.1", 4646), ("", 0))

    assert (remote(1232).maximum_block_size_exp, remote(1232).maximum_payload_size) == (6, 1124)
    assert remote(576).maximum_block_size_exp == 4  # 256-byte blocks fit 576 - 37 - 64 = 475 bytes
    assert remote(576).maximum_payload_size == 475


def test_server_refuses_renegotiation_without_a_new_handshake(pki_dir, listener):
    # A client that is willing to renegotiate (ours is not), to see what the server does.
    context = SSL.Context(SSL.DTLS_CLIENT_METHOD)
    context.use_certificate_chain_file(str(pki_dir / "client.crt"))
    context.use_privatekey_file(str(pki_dir / "client.key"))
    context.load_verify_locations(str(pki_dir / "ca.crt"))
    context.set_options(SSL.OP_NO_QUERY_MTU)
    pair = connect(pki_dir, listener, context=context)
    assert pair.client.established
    ssl = pair.client._ssl
    assert ssl.renegotiate()
    with contextlib.suppress(SSL.WantReadError):
        ssl.do_handshake()
    now = time.monotonic()
    events = [e for d in pair.client.datagrams_to_send() for e in pair.server.receive_datagram(d, now)]
    assert not any(isinstance(e, HandshakeCompleted) for e in events)
    assert pair.server.established
    # the server answered with a no_renegotiation alert; this (renegotiation-happy) client gives up on its own
    replies = [e for d in pair.server.datagrams_to_send() for e in pair.client.receive_datagram(d, now)]
    assert len(replies) == 1 and "no renegotiation" in str(replies[0].error)


def test_messages_waiting_for_the_handshake_are_bounded(pki_dir):
    from opendots.transport.dtls import MAX_PENDING_BEFORE_HANDSHAKE, SendQueueFull

    client = DtlsConnection.connect(client_context(files(pki_dir, "client"), "localhost"), now=0.0)
    for _ in range(MAX_PENDING_BEFORE_HANDSHAKE):
        client.send(b"queued")
    with pytest.raises(SendQueueFull):
        client.send(b"one too many")
    assert not client.closed
