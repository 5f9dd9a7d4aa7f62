"""Sans-I/O DTLS 1.2 over pyOpenSSL memory BIOs: no sockets, no event loop, time passed in as `now`.

`DtlsListener` (opendots.transport.dtls_listener) answers ClientHellos statelessly and hands out a `DtlsConnection`
once a ClientHello carries a valid cookie. `DtlsConnection` takes datagrams in, gives datagrams out (packed to the
path MTU) and reports what happened as events. The asyncio shell lives in `opendots.transport.dtls_interface`.

OpenSSL keeps its own clock for handshake retransmissions (`DTLSv1_get_timeout`), so those timers are reported
relative to the call and the shell turns them into loop deadlines.

On the server, once the handshake is done with one of the profile's AEAD suites, the session is handed to our own
record layer (`opendots.transport.dtls_records`) and OpenSSL's per-session state is freed (~80 KiB, issue 20); the
events and the API stay the same. OPENDOTS_DTLS_RECORD_LAYER=openssl in the environment keeps OpenSSL throughout
(for comparison benchmarks).
"""

from __future__ import annotations

import contextlib
import math
import os
import ssl
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from opendots.config import TlsFiles
from opendots.pki.verify import HandshakeNotes, explain, handshake_failure
from opendots.transport.dtls_records import (
    CONTENT_ALERT,
    CONTENT_HANDSHAKE,
    EPOCH,
    SUITES,
    RecordLayer,
    SequenceExhausted,
    expand_keys,
    parse_header,
)
from opendots.transport.identity import PeerIdentity
from opendots.transport.profile import (
    CIPHER_LIST,
    DEFAULT_DTLS_MTU,
    DTLS1_2_VERSION,
    certificate_matches_name,
)

RECORD_HEADER_LENGTH = 13  # type(1) version(2) epoch(2) sequence(6) length(2), RFC 6347 §4.1
CONTENT_TYPE_HANDSHAKE = 22
CONTENT_TYPE_APPLICATION_DATA = 23
HANDSHAKE_TYPE_CLIENT_HELLO = 1
_APPLICATION_DATA_TYPE = bytes((CONTENT_TYPE_APPLICATION_DATA,))
SESSION_ID_CONTEXT = b"opendots-dots-signal"
MAX_DATAGRAM = 65535
MAX_PENDING_BEFORE_HANDSHAKE = 64  # CoAP messages held while a session comes up (NSTART keeps it small anyway)
# pyOpenSSL exports no name for it; the value is OpenSSL's ABI (the stdlib exposes the same as ssl.OP_NO_RENEGOTIATION).
# Renegotiation buys DOTS nothing and costs the server a full handshake on the peer's whim.
OP_NO_RENEGOTIATION = ssl.OP_NO_RENEGOTIATION
HANDSHAKE_TYPE_FINISHED = 20
ALERT_FATAL = 2
ALERT_CLOSE_NOTIFY = 0
CLOSE_NOTIFY_ALERT = bytes((1, ALERT_CLOSE_NOTIFY))  # warning level, close_notify (RFC 5246 §7.2.1)
NO_RENEGOTIATION_ALERT = bytes((1, 100))  # warning level, no_renegotiation (RFC 5246 §7.2.2)
FLIGHT_RESEND_INTERVAL = 0.5  # seconds between two resends of our last flight (the peer's timer starts at 1 s)


def own_record_layer_default() -> bool:
    """The server hands established sessions to our record layer unless OPENDOTS_DTLS_RECORD_LAYER=openssl."""
    return os.environ.get("OPENDOTS_DTLS_RECORD_LAYER", "own").strip().lower() != "openssl"


class DtlsError(Exception):
    """A DTLS session failed (handshake error, certificate rejected, fatal alert, retransmissions exhausted)."""


class SendQueueFull(DtlsError):
    """Too many messages are waiting for the handshake; this one was not queued (the session stays)."""


class CloseNotifyReceived(DtlsError):
    """The peer closed the session in an orderly way (close_notify alert)."""


class SessionExpired(DtlsError):
    """The session was idle for too long, or its handshake never completed, and was dropped locally."""


class DtlsState(Enum):
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    CLOSED = "closed"


@dataclass(frozen=True)
class HandshakeCompleted:
    identity: PeerIdentity
    resumed: bool


@dataclass(frozen=True)
class ApplicationData:
    data: bytes


@dataclass(frozen=True)
class ConnectionClosed:
    error: DtlsError


DtlsEvent = HandshakeCompleted | ApplicationData | ConnectionClosed


def _base_context(credentials: TlsFiles, method: int) -> SSL.Context:
    context = SSL.Context(method)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_max_proto_version(DTLS1_2_VERSION)  # no DTLS 1.3 in this OpenSSL build's cookie path / libcoap 4.3.1
    context.set_cipher_list(CIPHER_LIST.encode())
    context.use_certificate_chain_file(str(credentials.cert))
    context.use_privatekey_file(str(credentials.key))
    context.check_privatekey()
    context.load_verify_locations(str(credentials.ca))
    # A memory BIO cannot report the path MTU; we set it per connection and OpenSSL must not overwrite it.
    context.set_options(
        SSL.OP_NO_QUERY_MTU | SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | OP_NO_RENEGOTIATION
    )
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # idle sessions give back their record buffers (memory per session)
    return context


def client_context(credentials: TlsFiles, server_name: str, name_source: str | None = None) -> SSL.Context:
    """Client side: present our certificate, require the server's to chain to our CA and to name SERVER_NAME
    (NAME_SOURCE: where that name came from, for the error when it does not)."""
    context = _base_context(credentials, SSL.DTLS_CLIENT_METHOD)

    def verify(connection: SSL.Connection, certificate: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        # Returning False makes OpenSSL abort the handshake with a bad_certificate alert.
        if ok and (depth != 0 or certificate_matches_name(certificate.to_cryptography(), server_name)):
            return True
        _explain(connection, "server", certificate, errno if not ok else 0, server_name, name_source)
        return False

    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
    context.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
    return context


def server_context(credentials: TlsFiles) -> SSL.Context:
    """Server side: mutual X.509 (CERT_REQUIRED), session cache and tickets for resumption."""
    context = _base_context(credentials, SSL.DTLS_SERVER_METHOD)

    def verify(connection: SSL.Connection, certificate: crypto.X509, errno: int, _depth: int, ok: int) -> bool:
        if not ok:
            _explain(connection, "client", certificate, errno, None)
        return bool(ok)

    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT | SSL.VERIFY_CLIENT_ONCE, verify)
    context.set_session_id(SESSION_ID_CONTEXT)  # resumption with client certificates needs a session id context
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    return context


def is_client_hello(datagram: bytes) -> bool:
    """A DTLS handshake record in epoch 0 that starts a ClientHello (the only thing a stranger may send us)."""
    return (
        len(datagram) > RECORD_HEADER_LENGTH
        and datagram[0] == CONTENT_TYPE_HANDSHAKE
        and datagram[3:5] == b"\x00\x00"
        and datagram[RECORD_HEADER_LENGTH] == HANDSHAKE_TYPE_CLIENT_HELLO
    )


def is_one_application_record(datagram: bytes) -> bool:
    """The datagram is exactly one application-data record (nearly every datagram of an established session)."""
    return (
        len(datagram) > RECORD_HEADER_LENGTH
        and datagram[0] == CONTENT_TYPE_APPLICATION_DATA
        and int.from_bytes(datagram[11:13], "big") == len(datagram) - RECORD_HEADER_LENGTH
    )


def split_records(stream: bytes) -> list[bytes]:
    """Cut OpenSSL's memory-BIO output (records back to back) into single DTLS records."""
    records = []
    offset = 0
    while offset + RECORD_HEADER_LENGTH <= len(stream):
        length = int.from_bytes(stream[offset + 11 : offset + 13], "big")
        end = offset + RECORD_HEADER_LENGTH + length
        records.append(stream[offset:end])
        offset = end
    if offset < len(stream):  # cannot happen with OpenSSL output; never drop bytes silently
        records.append(stream[offset:])
    return records


def pack_records(records: list[bytes], mtu: int) -> list[bytes]:
    """Pack whole records into as few datagrams as fit the MTU (RFC 6347 §4.1.1 allows several per datagram)."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


class DtlsConnection:
    """One DTLS session, client or server side, driven by datagrams and timer calls."""

    def __init__(
        self, ssl: SSL.Connection, *, now: float, mtu: int = DEFAULT_DTLS_MTU, own_records: bool = False
    ) -> None:
        self._ssl = ssl  # None once handed to our record layer (OWN_RECORDS, server side)
        self.mtu = mtu
        self._cleartext_mtu: int | None = None
        ssl.set_ciphertext_mtu(mtu)
        self.state = DtlsState.HANDSHAKING
        self.created_at = now
        self.last_activity = now
        self.identity: PeerIdentity | None = None
        self.session: SSL.Session | None = None
        self.cipher: str | None = None
        self._pending_plaintext: list[bytes] = []
        self._own_records = own_records
        self._records: RecordLayer | None = None
        self._next_write = 0  # epoch-1 sequence number after the last OpenSSL wrote (tracked while handshaking)
        self._out: list[bytes] = []  # records our layer produced, not yet fetched
        self._final_flight: list[bytes] | None = None  # OpenSSL's last flight, until the peer proves it has it
        self._flight_resent_at = -math.inf

    @classmethod
    def connect(
        cls, context: SSL.Context, *, now: float, mtu: int = DEFAULT_DTLS_MTU, session: SSL.Session | None = None
    ) -> DtlsConnection:
        """Client side: the ClientHello is ready in `datagrams_to_send()` right after this."""
        ssl = SSL.Connection(context, None)
        ssl.set_connect_state()
        if session is not None:
            ssl.set_session(session)
        connection = cls(ssl, now=now, mtu=mtu)
        connection._advance_handshake()
        return connection

    # ----------------------------------------------------------------- input

    def receive_datagram(self, datagram: bytes, now: float) -> list[DtlsEvent]:
        if self.state is DtlsState.CLOSED:
            return []
        if self._records is not None:
            return self._receive_records(datagram, now)
        self.last_activity = now
        try:
            self._ssl.bio_write(datagram)
        except SSL.Error as error:
            return self._fail(DtlsError(f"cannot buffer datagram: {error}"))
        events: list[DtlsEvent] = []
        if self.state is DtlsState.HANDSHAKING:
            events += self._advance_handshake()
        if self.state is DtlsState.ESTABLISHED:
            if self._records is not None:  # handed off just now: the rest of this datagram is ours
                events += self._receive_records(datagram, now, completing=True)
            else:
                events += self._read_application_data(is_one_application_record(datagram))
        return events

    def receive_application(self, datagram: bytes, now: float) -> bytes | None:
        """`receive_datagram`'s shortcut for what nearly every datagram of an established server session is: one
        application-data record for our record layer. Its plaintext (b"" when the record is dropped or empty:
        nothing to deliver), or None when DATAGRAM is anything else: then call `receive_datagram`. The same
        checks, state and effects as that path, without event objects."""
        records = self._records
        if (
            records is None
            or self.state is not DtlsState.ESTABLISHED
            or datagram[:1] != _APPLICATION_DATA_TYPE
            or int.from_bytes(datagram[11:13], "big") != len(datagram) - RECORD_HEADER_LENGTH
        ):
            return None
        plaintext = records.open_application(datagram)
        if plaintext is None:
            return b""
        self.last_activity = now  # only what authenticates keeps a session from its idle expiry
        self._final_flight = None  # the peer has our Finished: it sends in epoch 1 (RFC 6347 §4.2.4)
        return plaintext

    def handle_timer(self, now: float) -> list[DtlsEvent]:
        """Call when `timer_due_in()` has elapsed: retransmits the last handshake flight (or gives up)."""
        if self.state is DtlsState.CLOSED or self._records is not None:
            return []
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as error:
            return self._fail(DtlsError(f"handshake retransmissions exhausted: {error}"))
        return []

    def timer_due_in(self) -> float | None:
        """Seconds until OpenSSL wants `handle_timer` (handshake retransmission), None if no timer runs."""
        if self.state is DtlsState.CLOSED or self._records is not None:
            return None  # our record layer has no timer: it resends the last flight only when asked to
        return self._ssl.DTLSv1_get_timeout()

    # ---------------------------------------------------------------- output

    def send(self, plaintext: bytes) -> None:
        """Queue one application datagram (a CoAP message); held back until the handshake completes."""
        if self.state is DtlsState.CLOSED:
            raise DtlsError("session is closed")
        if self.state is DtlsState.HANDSHAKING:
            if len(self._pending_plaintext) >= MAX_PENDING_BEFORE_HANDSHAKE:
                raise SendQueueFull(f"{MAX_PENDING_BEFORE_HANDSHAKE} messages already wait for the handshake")
            self._pending_plaintext.append(plaintext)
            return
        if self._records is not None:
            try:
                self._out.append(self._records.seal(CONTENT_TYPE_APPLICATION_DATA, plaintext))
            except (SequenceExhausted, ValueError) as error:
                self._fail(DtlsError(f"cannot send: {error}"))
                raise DtlsError(f"cannot send: {error}") from error
            return
        try:
            self._ssl.write(plaintext)
        except SSL.Error as error:
            self._fail(DtlsError(f"cannot send: {error}"))
            raise DtlsError(f"cannot send: {error}") from error

    def seal_application(self, plaintext: bytes) -> bytes | None:
        """`send` then `datagrams_to_send`'s shortcut for an established session of our record layer with
        nothing else waiting: the one datagram carrying PLAINTEXT. None otherwise (or when the record cannot be
        made): then use `send`, which queues, or raises the error, as always."""
        records = self._records
        if records is None or self.state is not DtlsState.ESTABLISHED or self._out:
            return None
        try:
            return records.seal(CONTENT_TYPE_APPLICATION_DATA, plaintext)
        except (SequenceExhausted, ValueError):
            return None

    def datagrams_to_send(self) -> list[bytes]:
        if self._records is not None:
            records, self._out = self._out, []
            return pack_records(records, self.mtu)
        output = drain_output(self._ssl)
        if self._own_records and self.state is DtlsState.HANDSHAKING:
            self._note_written(output)
        if len(output) <= self.mtu:  # whole records that fit one datagram together (nearly always): as they are
            return [output] if output else []
        return pack_records(split_records(output), self.mtu)

    def close(self) -> None:
        """Send close_notify (fetch it with `datagrams_to_send()`) and stop."""
        if self._records is not None:
            if self.state is DtlsState.ESTABLISHED:
                with contextlib.suppress(SequenceExhausted):  # no sequence number left: not even a goodbye
                    self._out.append(self._records.seal(CONTENT_ALERT, CLOSE_NOTIFY_ALERT))
            self.state = DtlsState.CLOSED
            return
        if self.state is DtlsState.ESTABLISHED:
            with contextlib.suppress(SSL.Error):  # a half-broken session cannot even say goodbye
                self._ssl.shutdown()
        self.state = DtlsState.CLOSED

    @property
    def established(self) -> bool:
        return self.state is DtlsState.ESTABLISHED

    @property
    def closed(self) -> bool:
        return self.state is DtlsState.CLOSED

    @property
    def cleartext_mtu(self) -> int:
        """Application bytes that fit one record within the MTU (needs the negotiated cipher: established only).
        Asked of OpenSSL once: the MTU and the cipher no longer change, and every response checks it."""
        if self._cleartext_mtu is None:
            if not self.established:
                return self._ssl.get_cleartext_mtu()
            self._cleartext_mtu = self._ssl.get_cleartext_mtu()
        return self._cleartext_mtu

    @property
    def cleartext_budget(self) -> int:
        """Like `cleartext_mtu`, but usable before the handshake: assumes the largest AEAD overhead of the profile
        (13-byte header, 8-byte explicit nonce, 16-byte tag)."""
        if self.established:
            return self.cleartext_mtu
        return self.mtu - RECORD_HEADER_LENGTH - 8 - 16

    # -------------------------------------------------------------- internal

    def _advance_handshake(self) -> list[DtlsEvent]:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return []
        except SSL.Error as error:
            reason = handshake_failure(self._ssl.get_app_data(), _describe(error))
            return self._fail(DtlsError(f"handshake failed: {reason}"))
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        if certificate is None:  # VERIFY_FAIL_IF_NO_PEER_CERT makes this unreachable; keep the invariant explicit
            return self._fail(DtlsError("peer presented no certificate"))
        self.identity = PeerIdentity.from_der(certificate.public_bytes(Encoding.DER))
        self.session = self._ssl.get_session()
        self.cipher = self._ssl.get_cipher_name()
        self.state = DtlsState.ESTABLISHED
        events: list[DtlsEvent] = [HandshakeCompleted(self.identity, _session_reused(self._ssl))]
        if self._own_records:
            self._hand_off()
        pending, self._pending_plaintext = self._pending_plaintext, []
        for plaintext in pending:
            self.send(plaintext)
        return events

    def _read_application_data(self, one_record: bool = False) -> list[DtlsEvent]:
        """Every record OpenSSL can decrypt now. ONE_RECORD: the datagram just written was a single application
        record, which one read consumes; the read that would only fail with WantReadError (~3 µs, an exception
        through pyOpenSSL) is skipped."""
        events: list[DtlsEvent] = []
        while True:
            try:
                data = self._ssl.recv(MAX_DATAGRAM)
            except SSL.WantReadError:
                return events
            except SSL.ZeroReturnError:
                self.state = DtlsState.CLOSED
                with contextlib.suppress(SSL.Error):
                    self._ssl.shutdown()  # answer the close_notify with our own
                return [*events, ConnectionClosed(CloseNotifyReceived("peer sent close_notify"))]
            except SSL.Error as error:
                return events + self._fail(DtlsError(f"fatal DTLS error: {_describe(error)}"))
            events.append(ApplicationData(data))
            if one_record:
                return events

    def _fail(self, error: DtlsError) -> list[DtlsEvent]:
        self.state = DtlsState.CLOSED
        return [ConnectionClosed(error)]

    # ------------------------------------------- our record layer (server side)

    def _note_written(self, stream: bytes) -> None:
        """Track the epoch-1 sequence numbers OpenSSL writes (its Finished, retransmissions) so that our record
        layer carries on after the last one and never reuses one (our own output: the headers can be trusted)."""
        offset = 0
        while (header := parse_header(stream, offset)) is not None:
            _type, epoch, sequence, length = header
            if epoch == EPOCH:
                self._next_write = max(self._next_write, sequence + 1)
            offset += RECORD_HEADER_LENGTH + length

    def _hand_off(self) -> None:
        """Established with an AEAD suite of the profile: derive the record keys (RFC 5246 §6.3), keep OpenSSL's
        last flight (if this side sent the last one) for the peer's retransmissions, and drop the SSL object with
        everything it holds for this session. Any other suite or version stays with OpenSSL."""
        ssl = self._ssl
        suite = SUITES.get(self.cipher or "")
        if suite is None or ssl.get_protocol_version_name() != "DTLSv1.2":
            return
        keys = expand_keys(suite, ssl.master_key(), ssl.client_random(), ssl.server_random())
        flight = drain_output(self._ssl)
        self._note_written(flight)
        self._records = RecordLayer(suite, keys, write_sequence=self._next_write)
        self._out = split_records(flight)
        self._final_flight = list(self._out) or None
        self._cleartext_mtu = self.mtu - suite.overhead
        # SSL_free evicts the session from the SSL_CTX's cache unless the SSL was shut down: mark it so, and the
        # peer can still resume by session ID. No alert is sent (nothing is written once the SSL is gone).
        ssl.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
        self._ssl = None  # type: ignore[assignment]  # from here on only `_records` is used
        self.session = None  # the server never resumes from it; the SSL_CTX's cache keeps its own reference

    def _receive_records(self, datagram: bytes, now: float, completing: bool = False) -> list[DtlsEvent]:
        """Our record layer's input. COMPLETING: the datagram that finished the handshake, whose handshake records
        OpenSSL has just consumed."""
        assert self._records is not None
        events: list[DtlsEvent] = []
        records = self._records.open(datagram)
        if records:  # only what authenticates keeps a session from its idle expiry (a forged source address can't)
            self.last_activity = now
        for content_type, plaintext in records:
            if content_type == CONTENT_TYPE_APPLICATION_DATA:
                self._final_flight = None  # the peer has our Finished: it sends in epoch 1 (RFC 6347 §4.2.4)
                if plaintext:
                    events.append(ApplicationData(plaintext))
            elif content_type == CONTENT_ALERT:
                closed = self._alert_received(plaintext)
                if closed:
                    return events + closed
            elif content_type == CONTENT_HANDSHAKE and not completing:
                self._handshake_received(plaintext, now)
        return events

    def _alert_received(self, alert: bytes) -> list[DtlsEvent]:
        """RFC 5246 §7.2: close_notify is answered and ends the session, a fatal alert ends it, warnings pass."""
        assert self._records is not None
        if len(alert) != 2:
            return self._fail(DtlsError("fatal DTLS error: malformed alert"))
        level, description = alert
        if description == ALERT_CLOSE_NOTIFY:
            with contextlib.suppress(SequenceExhausted):
                self._out.append(self._records.seal(CONTENT_ALERT, CLOSE_NOTIFY_ALERT))
            self.state = DtlsState.CLOSED
            return [ConnectionClosed(CloseNotifyReceived("peer sent close_notify"))]
        if level == ALERT_FATAL:
            return self._fail(DtlsError(f"fatal DTLS error: the peer sent fatal alert {description}"))
        return []

    def _handshake_received(self, message: bytes, now: float) -> None:
        """An authenticated epoch-1 handshake message after the handshake. The peer's Finished again means it
        retransmits its last flight because ours was lost (RFC 6347 §4.2.4): resend ours, at most every
        FLIGHT_RESEND_INTERVAL. A ClientHello asking to renegotiate gets the no_renegotiation warning OpenSSL
        sends today (RFC 5246 §7.2.2; OP_NO_RENEGOTIATION); anything else is ignored."""
        assert self._records is not None
        if message[:1] == bytes((HANDSHAKE_TYPE_CLIENT_HELLO,)):
            with contextlib.suppress(SequenceExhausted):
                self._out.append(self._records.seal(CONTENT_ALERT, NO_RENEGOTIATION_ALERT))
            return
        if (
            message[:1] == bytes((HANDSHAKE_TYPE_FINISHED,))
            and self._final_flight is not None
            and now - self._flight_resent_at >= FLIGHT_RESEND_INTERVAL
        ):
            self._flight_resent_at = now
            self._out.extend(self._final_flight)


def drain_output(ssl: SSL.Connection) -> bytes:
    """Everything OpenSSL wrote to its memory BIO (whole records back to back)."""
    output = b""
    while True:
        try:
            chunk = ssl.bio_read(MAX_DATAGRAM)
        except SSL.WantReadError:
            break
        output += chunk
        if len(chunk) < MAX_DATAGRAM:  # a memory BIO hands over all it holds up to the size asked: now empty
            break
    return output


def _session_reused(ssl: SSL.Connection) -> bool:
    """pyOpenSSL 26 has no public accessor for SSL_session_reused; its raw binding is the only way to tell.

    Used for statistics and tests only; if a pyOpenSSL upgrade moves it, resumption is reported as False.
    """
    try:
        from OpenSSL._util import lib

        return bool(lib.SSL_session_reused(ssl._ssl))
    except (ImportError, AttributeError):
        return False


def _explain(
    connection: SSL.Connection,
    peer_role: str,
    certificate: crypto.X509,
    errno: int,
    name: str | None,
    name_source: str | None = None,
) -> None:
    """Keep the first failed check's explanation for the handshake's error (opendots.pki.verify)."""
    notes = connection.get_app_data()
    if notes is None:
        notes = HandshakeNotes(peer_role)
        connection.set_app_data(notes)
    if notes.reason is None:
        notes.reason = explain(certificate.to_cryptography(), errno, peer_role, name, name_source=name_source)


def _describe(error: SSL.Error) -> str:
    reasons = [part[2] for part in error.args[0] if isinstance(part, tuple) and len(part) == 3] if error.args else []
    if reasons:
        return ", ".join(str(reason) for reason in reasons)
    return str(error) or type(error).__name__
