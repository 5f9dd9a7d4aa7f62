"""Our own DTLS 1.2 record layer for established server sessions, AEAD suites only (sans-I/O).

Why: after its handshake, OpenSSL keeps ~80 KiB per DTLS session that no API releases (the handshake buffer it
keeps to retransmit the last flight, a datagram buffer, record-layer objects, write buffering, the peer chain, the
SSL object; issue 20). An established session needs far less: two AEAD keys, two IVs, a write sequence number and
a 64-record replay window. So the server does the handshake with OpenSSL (cookies, certificates, resumption), then
derives the record keys from the master secret and drops the SSL object; this module protects and checks records.

What it covers: the RFC 9132 §7 profile's AEAD suites (AES-GCM, RFC 5288; ChaCha20-Poly1305, RFC 7905) in epoch 1
of DTLS 1.2 (RFC 6347 §4.1): key expansion (RFC 5246 §6.3 with the PRF of §5), record protection (RFC 5246
§6.2.3.3, nonces per RFC 5288 §3 and RFC 7905 §2), the anti-replay window (RFC 6347 §4.1.2.6), and silent discard of
anything that does not authenticate (RFC 6347 §4.1.2.7). What the records mean (alerts, a retransmitted Finished)
is up to the caller (opendots.transport.dtls). Not covered, left to OpenSSL: the handshake, the client side, any
other suite. Tag checks are the AEAD's (`cryptography`, constant time); nothing unauthenticated is acted on.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HEADER_LENGTH = 13  # type(1) version(2) epoch(2) sequence_number(6) length(2), RFC 6347 §4.1
DTLS_1_2 = b"\xfe\xfd"
EPOCH = 1  # the first epoch after the handshake; renegotiation (a later epoch) is disabled
TAG_LENGTH = 16
EXPLICIT_NONCE_LENGTH = 8  # AES-GCM only (RFC 5288 §3)
WINDOW = 64  # RFC 6347 §4.1.2.6: "a window size of 64 is preferred"
LAST_SEQUENCE = (1 << 48) - 1  # RFC 6347 §4.1: a sequence number must not wrap; stop before
MAX_PLAINTEXT = 1 << 14  # RFC 5246 §6.2.1

CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23
_VERSION_EPOCH_1 = DTLS_1_2 + EPOCH.to_bytes(2, "big")
_EXPLICIT_OVERHEAD = 13 + 8 + 16  # header, explicit nonce, tag (AES-GCM)


@dataclass(frozen=True)
class Suite:
    prf_hash: Callable[..., Any]
    key_length: int
    iv_length: int  # AES-GCM: the 4-byte implicit salt; ChaCha20-Poly1305: the whole 12-byte nonce mask
    aead: type[AESGCM] | type[ChaCha20Poly1305]

    @property
    def explicit_nonce(self) -> bool:
        return self.aead is AESGCM

    @property
    def overhead(self) -> int:
        """Bytes a record adds to its plaintext."""
        return HEADER_LENGTH + (EXPLICIT_NONCE_LENGTH if self.explicit_nonce else 0) + TAG_LENGTH


_AES128 = Suite(hashlib.sha256, 16, 4, AESGCM)
_AES256 = Suite(hashlib.sha384, 32, 4, AESGCM)
_CHACHA = Suite(hashlib.sha256, 32, 12, ChaCha20Poly1305)
SUITES: dict[str, Suite] = {  # OpenSSL's names, as SSL_get_cipher_name gives them
    "ECDHE-ECDSA-AES128-GCM-SHA256": _AES128,
    "ECDHE-RSA-AES128-GCM-SHA256": _AES128,
    "ECDHE-ECDSA-AES256-GCM-SHA384": _AES256,
    "ECDHE-RSA-AES256-GCM-SHA384": _AES256,
    "ECDHE-ECDSA-CHACHA20-POLY1305": _CHACHA,
    "ECDHE-RSA-CHACHA20-POLY1305": _CHACHA,
}


class SequenceExhausted(Exception):
    """The 48-bit write sequence space is used up: the session must end (RFC 6347 §4.1)."""


def prf(hash_function: Callable[..., Any], secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF, P_hash(secret, label + seed) cut to LENGTH (RFC 5246 §5)."""
    seed = label + seed
    output = b""
    a = seed
    while len(output) < length:
        a = hmac.new(secret, a, hash_function).digest()
        output += hmac.new(secret, a + seed, hash_function).digest()
    return output[:length]


@dataclass(frozen=True)
class Keys:
    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def expand_keys(suite: Suite, master_secret: bytes, client_random: bytes, server_random: bytes) -> Keys:
    """RFC 5246 §6.3: the key block from the master secret; AEAD suites have no MAC keys (RFC 5288 §3)."""
    k, i = suite.key_length, suite.iv_length
    block = prf(suite.prf_hash, master_secret, b"key expansion", server_random + client_random, 2 * k + 2 * i)
    return Keys(block[:k], block[k : 2 * k], block[2 * k : 2 * k + i], block[2 * k + i :])


def parse_header(record: bytes, offset: int = 0) -> tuple[int, int, int, int] | None:
    """(content type, epoch, sequence number, length) of the record header at OFFSET, None if cut short."""
    if len(record) - offset < HEADER_LENGTH:
        return None
    epoch_and_sequence = int.from_bytes(record[offset + 3 : offset + 11], "big")
    length = int.from_bytes(record[offset + 11 : offset + 13], "big")
    return record[offset], epoch_and_sequence >> 48, epoch_and_sequence & LAST_SEQUENCE, length


class RecordLayer:
    """Protects outgoing and checks incoming epoch-1 records of one server session.

    WRITE_SEQUENCE: the next sequence number to write in epoch 1, i.e. one past the last OpenSSL used for our
    Finished (never reuse one: with AES-GCM the explicit nonce is the sequence number).
    """

    __slots__ = (
        "_bitmap",
        "_explicit",
        "_read",
        "_read_iv",
        "_top",
        "_write",
        "_write_iv",
        "overhead",
        "write_sequence",
    )

    def __init__(self, suite: Suite, keys: Keys, *, write_sequence: int) -> None:
        self._read = suite.aead(keys.client_key)
        self._write = suite.aead(keys.server_key)
        self._read_iv = keys.client_iv
        self._write_iv = keys.server_iv
        self._explicit = suite.explicit_nonce
        self.overhead = suite.overhead
        self.write_sequence = write_sequence
        self._top = -1  # highest sequence number authenticated so far
        self._bitmap = 0  # bit i set: sequence number _top - i was received (RFC 6347 §4.1.2.6)

    # ------------------------------------------------------------------ write

    def seal(self, content_type: int, plaintext: bytes) -> bytes:
        """One epoch-1 record carrying PLAINTEXT (at most 2^14 bytes)."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"{len(plaintext)} bytes do not fit one record (RFC 5246 §6.2.1)")
        sequence = self.write_sequence
        if sequence > LAST_SEQUENCE:
            raise SequenceExhausted("the 48-bit record sequence space is used up")
        self.write_sequence = sequence + 1
        epoch_sequence = ((EPOCH << 48) | sequence).to_bytes(8, "big")
        type_version = bytes((content_type, *DTLS_1_2))
        aad = epoch_sequence + type_version + len(plaintext).to_bytes(2, "big")
        if self._explicit:  # RFC 5288 §3: salt || explicit part; the explicit part is epoch||seq, unique per key
            body = epoch_sequence + self._write.encrypt(self._write_iv + epoch_sequence, plaintext, aad)
        else:  # RFC 7905 §2: the IV XOR the padded epoch||seq
            body = self._write.encrypt(_xor_nonce(self._write_iv, epoch_sequence), plaintext, aad)
        return type_version + epoch_sequence + len(body).to_bytes(2, "big") + body

    # ------------------------------------------------------------------- read

    def open(self, datagram: bytes) -> list[tuple[int, bytes]]:
        """(content type, plaintext) of every record in DATAGRAM that is epoch 1, fresh, and authenticates.
        Anything else (another epoch, a replay, a bad tag, a cut-off record) is dropped without a word
        (RFC 6347 §4.1.2.7); a truncated record ends the datagram's processing (its length cannot be trusted)."""
        records: list[tuple[int, bytes]] = []
        offset = 0
        end = len(datagram)
        while offset + HEADER_LENGTH <= end:
            _content_type, epoch, sequence, length = parse_header(datagram, offset)  # type: ignore[misc]
            start, offset = offset, offset + HEADER_LENGTH + length
            if offset > end:
                break
            if epoch != EPOCH or datagram[start + 1 : start + 3] != DTLS_1_2 or not self._fresh(sequence):
                continue
            content_type = datagram[start]
            plaintext = self._decrypt(datagram, start, content_type, length)
            if plaintext is None:
                continue
            self._mark(sequence)
            records.append((content_type, plaintext))
        return records

    def open_application(self, datagram: bytes) -> bytes | None:
        """The plaintext of DATAGRAM, which the caller knows to be exactly one application-data record (nearly
        every datagram of a session), or None when `open` would drop it: the same checks, inlined (the per-message
        path of every established session)."""
        if datagram[1:5] != _VERSION_EPOCH_1:
            return None
        epoch_sequence = datagram[3:11]
        sequence = int.from_bytes(epoch_sequence, "big") & LAST_SEQUENCE
        top = self._top
        if sequence <= top and (top - sequence >= WINDOW or (self._bitmap >> (top - sequence)) & 1):
            return None
        if self._explicit:
            plain_length = len(datagram) - _EXPLICIT_OVERHEAD
            nonce = self._read_iv + datagram[HEADER_LENGTH : HEADER_LENGTH + EXPLICIT_NONCE_LENGTH]
            body = datagram[HEADER_LENGTH + EXPLICIT_NONCE_LENGTH :]
        else:
            plain_length = len(datagram) - HEADER_LENGTH - TAG_LENGTH
            nonce = _xor_nonce(self._read_iv, epoch_sequence)
            body = datagram[HEADER_LENGTH:]
        if plain_length < 0:
            return None
        try:
            plaintext = self._read.decrypt(
                nonce, body, epoch_sequence + datagram[0:3] + plain_length.to_bytes(2, "big")
            )
        except InvalidTag:
            return None
        if sequence == top + 1:  # the next in order (nearly every record): _mark's shift by one, written out
            self._bitmap = ((self._bitmap << 1) | 1) & _WINDOW_MASK
            self._top = sequence
        else:
            self._mark(sequence)
        return plaintext

    def _decrypt(self, datagram: bytes, start: int, content_type: int, length: int) -> bytes | None:
        epoch_sequence = datagram[start + 3 : start + 11]
        body = start + HEADER_LENGTH
        if self._explicit:
            plain_length = length - EXPLICIT_NONCE_LENGTH - TAG_LENGTH
            nonce = self._read_iv + datagram[body : body + EXPLICIT_NONCE_LENGTH]
            body += EXPLICIT_NONCE_LENGTH
        else:
            plain_length = length - TAG_LENGTH
            nonce = _xor_nonce(self._read_iv, epoch_sequence)
        if plain_length < 0:
            return None
        aad = epoch_sequence + bytes((content_type,)) + DTLS_1_2 + plain_length.to_bytes(2, "big")
        try:
            return self._read.decrypt(nonce, datagram[body : start + HEADER_LENGTH + length], aad)
        except InvalidTag:
            return None

    def _fresh(self, sequence: int) -> bool:
        """Not yet seen and not older than the window (checked before decrypting, marked only after)."""
        if sequence > self._top:
            return True
        behind = self._top - sequence
        return behind < WINDOW and not (self._bitmap >> behind) & 1

    def _mark(self, sequence: int) -> None:
        if sequence > self._top:
            shift = sequence - self._top
            self._bitmap = ((self._bitmap << shift) | 1) & _WINDOW_MASK if shift < WINDOW else 1
            self._top = sequence
        else:
            self._bitmap |= 1 << (self._top - sequence)


_WINDOW_MASK = (1 << WINDOW) - 1


def _xor_nonce(iv: bytes, epoch_sequence: bytes) -> bytes:
    return (int.from_bytes(iv, "big") ^ int.from_bytes(epoch_sequence, "big")).to_bytes(12, "big")
