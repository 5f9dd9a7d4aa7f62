"""The server's own DTLS 1.2 record layer (opendots.transport.dtls_records) against a real OpenSSL client.

The client is the sans-I/O DtlsConnection on OpenSSL memory BIOs; the server hands its session over after the
handshake. Records the OpenSSL client cannot be made to send (a fatal alert, a renegotiation hello, a retransmitted
Finished at a chosen time) are sealed with the client's own keys, read from its SSL object.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opendots.transport import dtls as dtls_module
from opendots.transport.dtls import (
    ApplicationData,
    CloseNotifyReceived,
    ConnectionClosed,
    DtlsConnection,
    DtlsError,
    HandshakeCompleted,
    client_context,
)
from opendots.transport.dtls_listener import DtlsListener
from opendots.transport.dtls_records import (
    CONTENT_ALERT,
    CONTENT_HANDSHAKE,
    LAST_SEQUENCE,
    SUITES,
    Keys,
    RecordLayer,
    expand_keys,
    parse_header,
)
from tests.helpers import tls_files as files
from tests.helpers.dtls_memory import PEER, sent_one_by_one

SUITE_NAMES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]


class Handshake:
    """An OpenSSL client and our listener; every datagram the server sends is kept (`server_sent`)."""

    def __init__(
        self, pki_dir: Path, *, suite=None, own: bool = True, context=None, session=None, listener=None
    ) -> None:
        self.listener = listener or DtlsListener(files(pki_dir, "server"), now=time.monotonic(), own_record_layer=own)
        if context is None:
            context = client_context(files(pki_dir, "client"), "localhost")
            if suite is not None:
                context.set_cipher_list(suite.encode())
        self.context = context
        self.client = DtlsConnection.connect(context, now=time.monotonic(), session=session)
        self.server: DtlsConnection | None = None
        self.server_sent: list[bytes] = []
        self.server_events: list = []
        self.client_events: list = []

    def to_server(self, now: float) -> None:
        for datagram in self.client.datagrams_to_send():
            if self.server is None:
                result = self.listener.receive(datagram, PEER, now)
                for reply in result.reply:
                    self.client_events += self.client.receive_datagram(reply, now)
                self.server = result.connection
            else:
                self.server_events += self.server.receive_datagram(datagram, now)

    def to_client(self, now: float, *, lose: bool = False) -> list[bytes]:
        datagrams = self.server.datagrams_to_send() if self.server is not None else []
        self.server_sent += datagrams
        if not lose:
            for datagram in datagrams:
                self.client_events += self.client.receive_datagram(datagram, now)
        return datagrams

    def run(self, *, lose_final_flight: bool = False) -> Handshake:
        now = time.monotonic()
        for _ in range(10):
            self.to_server(now)
            lose = lose_final_flight and self.server is not None and self.server.established
            self.to_client(now, lose=lose)
            if self.client.established or lose:
                break
        self.to_server(now)  # a resumed handshake ends with the client's Finished
        return self


def connected(pki_dir: Path, **kw) -> tuple[DtlsConnection, DtlsConnection, Handshake]:
    handshake = Handshake(pki_dir, **kw).run()
    assert handshake.client.established and handshake.server is not None and handshake.server.established
    return handshake.server, handshake.client, handshake


def peer_layer(client: DtlsConnection, write_sequence: int = 1000) -> RecordLayer:
    """A record layer with the client's keys (from its SSL object): it writes records OpenSSL will not send, and
    reads what the server sends without disturbing the OpenSSL client."""
    ssl = client._ssl
    suite = SUITES[ssl.get_cipher_name()]
    keys = expand_keys(suite, ssl.master_key(), ssl.client_random(), ssl.server_random())
    swapped = Keys(keys.server_key, keys.client_key, keys.server_iv, keys.client_iv)
    return RecordLayer(suite, swapped, write_sequence=write_sequence)


def epoch1_sequences(datagrams: list[bytes]) -> list[int]:
    found = []
    for datagram in datagrams:
        offset = 0
        while (header := parse_header(datagram, offset)) is not None:
            if header[1] == 1:
                found.append(header[2])
            offset += 13 + header[3]
    return found


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_each_aead_suite_of_the_profile_carries_data_both_ways_after_openssl_is_dropped_rfc9132_7(pki_dir, suite):
    server, client, _ = connected(pki_dir, suite=suite)
    assert server.cipher == suite and server._records is not None
    assert server._ssl is None and server.session is None  # OpenSSL's per-session state is gone
    now = time.monotonic()
    client.send(b"\x40\x01\x12\x34")
    assert [e for d in client.datagrams_to_send() for e in server.receive_datagram(d, now)] == [
        ApplicationData(b"\x40\x01\x12\x34")
    ]
    server.send(b"\x60\x45\x12\x34")
    assert [e for d in server.datagrams_to_send() for e in client.receive_datagram(d, now)] == [
        ApplicationData(b"\x60\x45\x12\x34")
    ]


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_cleartext_mtu_is_the_same_as_openssls_for_each_suite_rfc6347_4_1_1(pki_dir, suite):
    own, _, _ = connected(pki_dir, suite=suite)
    theirs, _, _ = connected(pki_dir, suite=suite, own=False)
    assert theirs._ssl is not None
    assert own.cleartext_mtu == theirs.cleartext_mtu == own.cleartext_budget
    overhead = 13 + 16 + (0 if "CHACHA" in suite else 8)
    assert own.cleartext_mtu == own.mtu - overhead


@pytest.mark.parametrize("resumed", [False, True])
def test_write_sequence_numbers_carry_on_after_openssls_finished_rfc6347_4_1(pki_dir, resumed):
    session = None
    context = client_context(files(pki_dir, "client"), "localhost")
    listener = DtlsListener(files(pki_dir, "server"), now=time.monotonic())
    if resumed:  # (the first client stays alive: OpenSSL forgets a session whose SSL is freed without shutdown)
        first = connected(pki_dir, context=context, listener=listener)[1]
        session = first.session
    server, client, handshake = connected(pki_dir, context=context, session=session, listener=listener)
    assert any(isinstance(e, HandshakeCompleted) and e.resumed == resumed for e in handshake.client_events)
    written = epoch1_sequences(handshake.server_sent)  # OpenSSL's Finished (and any retransmission of it)
    assert written
    server.send(b"first")
    (datagram,) = server.datagrams_to_send()
    assert epoch1_sequences([datagram]) == [max(written) + 1]
    assert client.receive_datagram(datagram, time.monotonic()) == [ApplicationData(b"first")]


def test_the_session_ends_before_the_48_bit_write_sequence_wraps_rfc6347_4_1(pki_dir):
    server, client, _ = connected(pki_dir)
    server._records.write_sequence = LAST_SEQUENCE
    server.send(b"last one")
    (datagram,) = server.datagrams_to_send()
    assert epoch1_sequences([datagram]) == [LAST_SEQUENCE]
    assert client.receive_datagram(datagram, time.monotonic()) == [ApplicationData(b"last one")]
    with pytest.raises(DtlsError, match="sequence"):
        server.send(b"one too many")
    assert server.closed and server.datagrams_to_send() == []


def test_replayed_and_too_old_records_are_dropped_and_reordered_ones_accepted_rfc6347_4_1_2_6(pki_dir):
    server, client, _ = connected(pki_dir)
    now = time.monotonic()
    records = sent_one_by_one(client, 70)
    assert server.receive_datagram(records[69], now) == [ApplicationData(b"m69")]
    assert server.receive_datagram(records[5], now) == []  # 64 behind the newest: outside the window
    assert server.receive_datagram(records[6], now) == [ApplicationData(b"m6")]  # 63 behind: late but fresh
    assert server.receive_datagram(records[6], now) == []  # a replay
    assert server.receive_datagram(records[69], now) == []
    assert server.receive_datagram(records[40], now) == [ApplicationData(b"m40")]
    assert server.established


def test_invalid_records_are_dropped_silently_and_do_not_move_the_window_rfc6347_4_1_2_7(pki_dir):
    server, client, _ = connected(pki_dir)
    now = time.monotonic()
    (genuine,) = sent_one_by_one(client, 1)
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
    other_epoch = genuine[:3] + b"\x00\x02" + genuine[5:]
    epoch_zero = genuine[:3] + b"\x00\x00" + genuine[5:]
    truncated = genuine[:-1]
    too_short_for_a_tag = genuine[:11] + (8).to_bytes(2, "big") + genuine[13:21]
    for forged in (tampered, other_epoch, epoch_zero, truncated, too_short_for_a_tag, genuine[:12]):
        assert server.receive_datagram(forged, now) == []
        assert server.established
    assert server.receive_datagram(genuine, now) == [ApplicationData(b"m0")]


def test_several_records_in_one_datagram_are_all_read_and_a_cut_off_last_one_is_dropped_rfc6347_4_1_1(pki_dir):
    server, client, _ = connected(pki_dir)
    now = time.monotonic()
    for body in (b"two", b"three", b"four"):
        client.send(body)
    (packed,) = client.datagrams_to_send()
    assert len(epoch1_sequences([packed])) == 3
    assert server.receive_datagram(packed, now) == [ApplicationData(b) for b in (b"two", b"three", b"four")]
    client.send(b"five")
    client.send(b"six")
    (two,) = client.datagrams_to_send()
    assert server.receive_datagram(two[:-3], now) == [ApplicationData(b"five")]


def test_close_notify_from_the_peer_ends_the_session_and_is_answered_rfc5246_7_2_1(pki_dir):
    server, client, _ = connected(pki_dir)
    now = time.monotonic()
    client.close()
    events = [e for d in client.datagrams_to_send() for e in server.receive_datagram(d, now)]
    assert len(events) == 1 and isinstance(events[0].error, CloseNotifyReceived)
    assert server.closed
    (answer,) = server.datagrams_to_send()
    assert epoch1_sequences([answer]) and answer[0] == CONTENT_ALERT


def test_close_sends_an_encrypted_close_notify_the_peer_reads_rfc5246_7_2_1(pki_dir):
    server, client, _ = connected(pki_dir)
    server.close()
    assert server.closed
    events = [e for d in server.datagrams_to_send() for e in client.receive_datagram(d, time.monotonic())]
    assert len(events) == 1 and isinstance(events[0], ConnectionClosed)
    assert isinstance(events[0].error, CloseNotifyReceived)


def test_a_fatal_alert_ends_the_session_and_a_warning_does_not_rfc5246_7_2(pki_dir):
    server, client, _ = connected(pki_dir)
    peer = peer_layer(client)
    now = time.monotonic()
    assert server.receive_datagram(peer.seal(CONTENT_ALERT, bytes((1, 90))), now) == []  # user_canceled warning
    assert server.established
    (event,) = server.receive_datagram(peer.seal(CONTENT_ALERT, bytes((2, 40))), now)  # handshake_failure
    assert isinstance(event, ConnectionClosed) and not isinstance(event.error, CloseNotifyReceived)
    assert "fatal" in str(event.error) and server.closed


def test_a_lost_final_flight_is_resent_when_the_client_retransmits_its_own_rfc6347_4_2_4(pki_dir):
    handshake = Handshake(pki_dir).run(lose_final_flight=True)
    server, client = handshake.server, handshake.client
    assert server.established and server._ssl is None and not client.established
    time.sleep(1.1)  # OpenSSL's client retransmits its flight after 1 s of silence
    now = time.monotonic()
    client.handle_timer(now)
    handshake.to_server(now)  # its Finished again, in epoch 1 with a new sequence number
    resent = handshake.to_client(now)
    assert resent and client.established
    client.send(b"hello")
    handshake.to_server(now)
    assert ApplicationData(b"hello") in handshake.server_events
    assert server._final_flight is None  # the peer proved it has our flight: its bytes are freed


def test_the_final_flight_is_resent_at_most_once_per_interval_and_only_until_the_peer_sends_data(pki_dir):
    handshake = Handshake(pki_dir).run(lose_final_flight=True)
    server, client = handshake.server, handshake.client
    finished = handshake.server_sent[-1]
    peer = peer_layer(client)
    again = bytes((20, 0, 0, 12)) + bytes(8) + bytes(12)  # the peer's Finished (type 20) once more
    now = time.monotonic()
    assert server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, again), now) == []
    assert server.datagrams_to_send() == [finished]
    assert server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, again), now + 0.1) == []
    assert server.datagrams_to_send() == []  # rate-limited
    server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, again), now + dtls_module.FLIGHT_RESEND_INTERVAL)
    assert server.datagrams_to_send() == [finished]
    assert server.receive_datagram(peer.seal(23, b"data"), now + 2) == [ApplicationData(b"data")]
    server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, again), now + 5)
    assert server.datagrams_to_send() == []


def test_other_handshake_messages_after_the_handshake_are_ignored_rfc6347_4_2_8(pki_dir):
    server, client, _ = connected(pki_dir)
    peer = peer_layer(client)
    now = time.monotonic()
    client.send(b"confirms the handshake")
    assert len([e for d in client.datagrams_to_send() for e in server.receive_datagram(d, now)]) == 1
    for message_type in (0, 11, 16, 20):  # hello_request, certificate, client_key_exchange, finished
        assert server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, bytes((message_type, 0, 0, 0))), now) == []
    assert server.datagrams_to_send() == []  # a confirmed session has no flight to resend
    assert server.established


def test_a_renegotiation_hello_in_epoch_1_gets_no_renegotiation_and_the_session_stays_rfc5246_7_2_2(pki_dir):
    server, client, _ = connected(pki_dir)
    peer = peer_layer(client)
    assert server.receive_datagram(peer.seal(CONTENT_HANDSHAKE, bytes((1, 0, 0, 0))), time.monotonic()) == []
    (alert,) = server.datagrams_to_send()
    assert peer.open(alert) == [(CONTENT_ALERT, bytes((1, 100)))]
    assert server.established


def test_application_data_in_the_datagram_that_completes_the_handshake_is_delivered_once(pki_dir):
    context = client_context(files(pki_dir, "client"), "localhost")
    listener = DtlsListener(files(pki_dir, "server"), now=time.monotonic())
    first = connected(pki_dir, context=context, listener=listener)[1]
    session = first.session
    handshake = Handshake(pki_dir, context=context, session=session, listener=listener)
    handshake.client.send(b"early")  # waits for the handshake, then leaves with the client's Finished
    handshake.run()
    data = [e for e in handshake.server_events if isinstance(e, ApplicationData)]
    assert data == [ApplicationData(b"early")]
    assert handshake.server._records is not None


def test_a_suite_outside_our_record_layer_stays_with_openssl(pki_dir, monkeypatch):
    monkeypatch.delitem(SUITES, "ECDHE-ECDSA-AES128-GCM-SHA256")
    server, client, _ = connected(pki_dir)
    assert server._records is None and server._ssl is not None
    client.send(b"still fine")
    now = time.monotonic()
    assert [e for d in client.datagrams_to_send() for e in server.receive_datagram(d, now)] == [
        ApplicationData(b"still fine")
    ]


def test_session_id_resumption_still_finds_the_session_after_the_ssl_object_is_dropped_rfc5246_7_4_1_2(pki_dir):
    from OpenSSL import SSL

    context = client_context(files(pki_dir, "client"), "localhost")
    context.set_options(SSL.OP_NO_TICKET)  # only the server's session cache can resume this client
    listener = DtlsListener(files(pki_dir, "server"), now=time.monotonic())
    server, first, _ = connected(pki_dir, context=context, listener=listener)
    assert server._ssl is None
    _, _, again = connected(pki_dir, context=context, listener=listener, session=first.session)
    assert [e.resumed for e in again.client_events if isinstance(e, HandshakeCompleted)] == [True]


def test_records_of_another_epoch_or_version_are_dropped_even_when_they_authenticate_rfc6347_4_1(pki_dir, monkeypatch):
    from opendots.transport import dtls_records

    server, client, _ = connected(pki_dir)
    peer = peer_layer(client)
    now = time.monotonic()
    with monkeypatch.context() as patch:  # the peer's keys, but a record header (and AAD) it must not use
        patch.setattr(dtls_records, "EPOCH", 2)
        other_epoch = peer.seal(23, b"epoch 2")
    with monkeypatch.context() as patch:
        patch.setattr(dtls_records, "DTLS_1_2", b"\xfe\xff")
        dtls_1_0 = peer.seal(23, b"DTLS 1.0")
    assert server.receive_datagram(other_epoch, now) == []
    assert server.receive_datagram(dtls_1_0, now) == []
    assert server.receive_datagram(peer.seal(23, b"epoch 1"), now) == [ApplicationData(b"epoch 1")]
