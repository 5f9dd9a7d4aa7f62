"""Shared by the server-originated telemetry tests (RFC 9244 §8.3, §9.2): the setup that asks for it, and a clock
the test moves, so rates are computed over known intervals whatever the machine's speed."""

from __future__ import annotations

from dataclasses import dataclass

SERVER_ORIGINATED_SETUP = {
    "ietf-dots-telemetry:telemetry-setup": {
        "telemetry": [{"current-config": {"measurement-sample": "second", "server-originated-telemetry": True}}]
    }
}


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now
