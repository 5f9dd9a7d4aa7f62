"""The NON congestion-control parameters of RFC 9177 §7.2 and the local bounds of the engine.

`QBlockParameters` is what the peers may agree on (RFC 9362 sets it per DOTS session); `QBlockLimits` is local
policy that protects memory (largest body, bodies in progress per peer and in all). All times are seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# RFC 7252 §4.8 transmission parameters the RFC 9177 defaults are derived from.
ACK_TIMEOUT = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
MAX_LATENCY = 100.0
PROBING_RATE = 1.0


@dataclass(frozen=True)
class QBlockParameters:
    """RFC 9177 §7.2, Table 3. Leave a derived value as None to compute it the way the RFC says; explicit values
    (e.g. negotiated by RFC 9362) are used as given, without jitter."""

    max_payloads: int = 10
    non_max_retransmit: int = MAX_RETRANSMIT
    non_timeout: float = ACK_TIMEOUT
    non_receive_timeout: float | None = None
    non_probing_wait: float | None = None
    non_partial_timeout: float | None = None
    ack_random_factor: float = ACK_RANDOM_FACTOR
    max_latency: float = MAX_LATENCY
    probing_rate: float = PROBING_RATE  # bytes/s to a peer that does not respond (RFC 7252 §4.7; RFC 9132 sets it)

    def __post_init__(self) -> None:
        if not 1 <= self.max_payloads <= 1000:
            raise ValueError(f"MAX_PAYLOADS must be 1-1000, not {self.max_payloads}")
        if not 0 <= self.non_max_retransmit <= 15:
            raise ValueError(f"NON_MAX_RETRANSMIT must be 0-15, not {self.non_max_retransmit}")
        if self.non_timeout <= 0 or self.ack_random_factor < 1 or self.max_latency < 0:
            raise ValueError("NON_TIMEOUT must be positive, ACK_RANDOM_FACTOR at least 1, MAX_LATENCY not negative")
        # §7.2: NON_RECEIVE_TIMEOUT MUST exceed NON_TIMEOUT_RANDOM by at least one second, so the sender can start
        # its next set before the receiver gives up on the previous one. NON_TIMEOUT_RANDOM's largest value counts.
        floor = self.non_timeout * self.ack_random_factor + 1
        if self.receive_timeout < floor - 1e-9:
            raise ValueError(
                f"NON_RECEIVE_TIMEOUT {self.receive_timeout:g} s must be at least NON_TIMEOUT x ACK_RANDOM_FACTOR + 1"
                f" = {floor:g} s (RFC 9177 §7.2)"
            )
        if self.probing_rate <= 0:
            raise ValueError(f"PROBING_RATE must be positive, not {self.probing_rate}")
        if self.partial_timeout <= 0 or (self.non_probing_wait is not None and self.non_probing_wait <= 0):
            raise ValueError("NON_PARTIAL_TIMEOUT and NON_PROBING_WAIT must be positive")

    @property
    def receive_timeout(self) -> float:
        """NON_RECEIVE_TIMEOUT: twice NON_TIMEOUT by default, raised to NON_TIMEOUT x ACK_RANDOM_FACTOR + 1 when
        NON_TIMEOUT is under 2 s (twice it would break §7.2's MUST); an explicit value is checked, never raised."""
        if self.non_receive_timeout is not None:
            return self.non_receive_timeout
        return max(2 * self.non_timeout, self.non_timeout * self.ack_random_factor + 1)

    def _span(self) -> float:
        # The part NON_PROBING_WAIT and NON_PARTIAL_TIMEOUT share (EXCHANGE_LIFETIME's shape, RFC 7252 §4.8.2).
        return self.non_timeout * ((2**self.non_max_retransmit) - 1) * self.ack_random_factor + 2 * self.max_latency

    @property
    def partial_timeout(self) -> float:
        """NON_PARTIAL_TIMEOUT: how long a partly received body is kept (247 s with the defaults)."""
        if self.non_partial_timeout is not None:
            return self.non_partial_timeout
        return self._span() + self.non_timeout

    def probing_wait(self, timeout_random: float) -> float:
        """NON_PROBING_WAIT for a given NON_TIMEOUT_RANDOM (247-248 s with the defaults)."""
        if self.non_probing_wait is not None:
            return self.non_probing_wait
        return self._span() + timeout_random

    def timeout_random(self, rng: random.Random) -> float:
        """NON_TIMEOUT_RANDOM: a random duration between NON_TIMEOUT and NON_TIMEOUT x ACK_RANDOM_FACTOR, drawn once
        per body and then kept between all its MAX_PAYLOADS_SETs."""
        return rng.uniform(self.non_timeout, self.non_timeout * self.ack_random_factor)

    def time_to_wait(self, re_request_count: int) -> float:
        """§7.2: NON_RECEIVE_TIMEOUT x 2**(Re-Request-Count - 1), for the re-request numbered RE_REQUEST_COUNT."""
        return self.receive_timeout * (2 ** max(0, re_request_count - 1))


@dataclass(frozen=True)
class QBlockLimits:
    """Local bounds: a body larger than MAX_BODY, or cut into more than MAX_BLOCKS blocks (each stored block costs
    ~110 bytes beyond its payload: measured with tracemalloc, a 1 MiB body in 16-byte blocks takes ~8 MiB), is
    refused (4.13) before any of it is stored; a peer holds at most PER_PEER bodies in progress (a new one evicts
    its own oldest, so a Request-Tag flood only hurts the flooder); at most TOTAL bodies are in progress in all (a
    new one is refused with 5.03)."""

    max_body: int = 1 << 20
    max_blocks: int = 4096
    per_peer: int = 4
    total: int = 256

    def __post_init__(self) -> None:
        if self.max_body < 0 or self.max_blocks < 1 or self.per_peer < 1 or self.total < self.per_peer:
            raise ValueError("QBlockLimits wants max_body >= 0, max_blocks >= 1 and 1 <= per_peer <= total")

    def too_large(self, size: int, block_size: int) -> str | None:
        """Why a body of SIZE bytes in blocks of BLOCK_SIZE is refused, or None when it is within the bounds."""
        if size > self.max_body:
            return f"Size announces {size} bytes; the limit is {self.max_body}"
        if -(-size // block_size) > self.max_blocks:
            least = 16
            while least < 1024 and -(-size // least) > self.max_blocks:
                least *= 2
            return f"{size} bytes in {block_size}-byte blocks are more than {self.max_blocks} blocks; use {least}"
        return None
