"""The established server session's shortcuts (DtlsConnection.receive_application / seal_application, what the
DTLS server uses for nearly every datagram) keep every check of the general path: the anti-replay window, silent
discard of what does not authenticate, other epochs and versions, and anything that is not one application record
goes to `receive_datagram`. Real OpenSSL client, our record layer on the server (opendots.transport.dtls_records)."""

from __future__ import annotations

import time

import pytest

from opendots.transport.dtls import ApplicationData, DtlsConnection, client_context
from opendots.transport.dtls_listener import DtlsListener
from tests.helpers import tls_files as files
from tests.helpers.dtls_memory import connect, sent_one_by_one


def established(pki_dir, suite: str | None = None) -> tuple[DtlsConnection, DtlsConnection]:
    context = client_context(files(pki_dir, "client"), "localhost")
    if suite is not None:
        context.set_cipher_list(suite.encode())
    listener = DtlsListener(files(pki_dir, "server"), now=time.monotonic(), own_record_layer=True)
    pair = connect(pki_dir, listener, context=context)
    assert pair.server is not None and pair.server.established and pair.server._records is not None
    return pair.server, pair.client


def test_the_shortcut_keeps_the_anti_replay_window_rfc6347_4_1_2_6(pki_dir):
    server, client = established(pki_dir)
    records = sent_one_by_one(client, 70)
    now = time.monotonic()
    assert server.receive_application(records[69], now) == b"m69"
    assert server.receive_application(records[5], now) == b""  # 64 behind the newest: outside the window
    assert server.receive_application(records[6], now) == b"m6"  # 63 behind: late but fresh
    assert server.receive_application(records[6], now) == b""  # a replay
    assert server.receive_datagram(records[6], now) == []  # one window for both paths
    assert server.receive_application(records[69], now) == b""
    assert server.receive_application(records[40], now) == b"m40"
    assert server.last_activity == now


def test_the_shortcut_drops_what_does_not_authenticate_and_the_window_does_not_move_rfc6347_4_1_2_7(pki_dir):
    server, client = established(pki_dir)
    (genuine,) = sent_one_by_one(client, 1)
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
    other_epoch = genuine[:3] + b"\x00\x02" + genuine[5:]
    other_version = genuine[:1] + b"\xfe\xff" + genuine[3:]
    too_short_for_a_tag = genuine[:11] + (8).to_bytes(2, "big") + genuine[13:21]
    for forged in (tampered, other_epoch, other_version, too_short_for_a_tag):
        assert server.receive_application(forged, time.monotonic()) == b""
        assert server.established
    assert server.receive_application(genuine, time.monotonic()) == b"m0"


def test_anything_but_one_whole_application_record_is_left_to_the_general_path(pki_dir):
    server, client = established(pki_dir)
    for body in (b"two", b"three"):
        client.send(body)
    (packed,) = client.datagrams_to_send()  # two records in one datagram (RFC 6347 §4.1.1)
    (single,) = sent_one_by_one(client, 1)
    now = time.monotonic()
    for other in (packed, single[:-1], single + b"\x00", b"\x15" + single[1:], single[:12], b""):
        assert server.receive_application(other, now) is None
    assert server.receive_datagram(packed, now) == [ApplicationData(b"two"), ApplicationData(b"three")]
    server.close()
    assert server.receive_application(single, now) is None  # closed: receive_datagram ignores it


def test_the_send_shortcut_gives_the_record_the_general_path_would_and_never_jumps_the_queue(pki_dir):
    server, client = established(pki_dir)
    server.datagrams_to_send()  # whatever the handshake left
    sealed = server.seal_application(b"\x50\x45\x00\x01")
    assert sealed is not None and client.receive_datagram(sealed, time.monotonic()) == [
        ApplicationData(b"\x50\x45\x00\x01")
    ]
    server.send(b"queued first")
    assert server.seal_application(b"later") is None  # the queue is not empty: `send` keeps the order
    server.close()
    assert server.seal_application(b"after close") is None


@pytest.mark.parametrize(
    "suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]
)
def test_both_shortcuts_carry_data_with_each_aead_suite_of_the_profile_rfc9132_7(pki_dir, suite):
    server, client = established(pki_dir, suite)
    assert server.cipher == suite
    server.datagrams_to_send()
    for index in range(3):
        (datagram,) = sent_one_by_one(client, 1)
        assert server.receive_application(datagram, time.monotonic()) == b"m0"
        sealed = server.seal_application(b"answer %d" % index)
        assert sealed is not None
        assert client.receive_datagram(sealed, time.monotonic()) == [ApplicationData(b"answer %d" % index)]


def test_only_records_that_authenticate_keep_the_session_from_its_idle_expiry(pki_dir):
    """A datagram forged with the peer's source address must not keep a session alive that the peer left."""
    server, client = established(pki_dir)
    (genuine,) = sent_one_by_one(client, 1)
    (second,) = sent_one_by_one(client, 1)
    tampered = genuine[:-1] + bytes([genuine[-1] ^ 1])
    start = server.last_activity
    assert server.receive_application(tampered, start + 100) == b""
    assert server.receive_datagram(tampered + tampered, start + 200) == []  # two records: the general path
    assert server.last_activity == start
    assert server.receive_application(genuine, start + 300) == b"m0"
    assert server.last_activity == start + 300
    assert server.receive_datagram(second, start + 400) == [ApplicationData(b"m0")]
    assert server.last_activity == start + 400
