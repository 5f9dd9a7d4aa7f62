"""The robust-transmission values in force for one session (RFC 9362 §3, RFC 9177 §7.2), as the Q-Block engine of
that session reads them: plain numbers in seconds, every derived value already resolved."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RobustTransmission:
    """MAX_PAYLOADS, NON_* and the RFC 7252 parameters they are used with, for one configuration set."""

    max_payloads: int
    non_max_retransmit: int
    non_timeout: float
    non_receive_timeout: float
    non_probing_wait: float
    non_partial_timeout: float
    ack_random_factor: float
    probing_rate: int
    """Bytes per second (RFC 7252 §4.7), applied per body (RFC 9177 §7.2)."""
    explicit_probing_wait: bool = False
    """non-probing-wait was configured: RFC 9177 §7.2 uses an explicit value without jitter."""

    def non_timeout_random(self, rng: random.Random) -> float:
        """NON_TIMEOUT_RANDOM: the delay between two MAX_PAYLOADS_SETs of a body, drawn once per body."""
        return rng.uniform(self.non_timeout, self.non_timeout * self.ack_random_factor)

    def probing_wait(self, rng: random.Random) -> float:
        """NON_PROBING_WAIT as checked now: a derived value is a base to which up to non-timeout x
        (ack-random-factor - 1) of jitter is added at each check (RFC 9362 §3, Implementation Note 1)."""
        if self.explicit_probing_wait:
            return self.non_probing_wait
        return self.non_probing_wait + rng.uniform(0.0, self.non_timeout * (self.ack_random_factor - 1))

    def receive_wait(self, re_requests: int) -> float:
        """Time-to-Wait before re-requesting missing payloads the RE_REQUESTS-th time (1, 2, ...): doubles each time."""
        return self.non_receive_timeout * 2 ** max(0, re_requests - 1)

    def engine_values(self) -> dict[str, float | int | None]:
        """These values as the keyword arguments of RFC 9177 §7.2's parameters of the Q-Block engine, either side's
        (opendots.transport.qblock.QBlockParameters): all resolved already, but a derived NON_PROBING_WAIT is left
        to the engine (None), which keeps its jitter."""
        return {
            "max_payloads": self.max_payloads,
            "non_max_retransmit": self.non_max_retransmit,
            "non_timeout": self.non_timeout,
            "non_receive_timeout": self.non_receive_timeout,
            "non_probing_wait": self.non_probing_wait if self.explicit_probing_wait else None,
            "non_partial_timeout": self.non_partial_timeout,
            "ack_random_factor": self.ack_random_factor,
            "probing_rate": float(self.probing_rate),
        }
