"""What the client core keeps durably, as an interface: mid/sid counters, the mitigations it asked for, the session
configuration it set. `opendots.store.client_state.ClientStateStore` is the SQLite implementation.

The core calls it synchronously, on purpose: RFC 9132 §4.4.1.1 wants a 'mid' committed before the request that
uses it leaves, and the state is a local file of the client's own.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Any, Protocol

from opendots.domain import defaults
from opendots.signal.client.core.requests import MID_MAX
from opendots.signal.client.core.scope import MitigationScope, ScopeError

MID_ROLLOVER = defaults.MID_ROLLOVER  # 3/4 of 2^32-1 (RFC 9132 §4.4.1.1)


def next_mid(counter: int, explicit: int | None, *, rollover_allowed: bool, active: set[int]) -> tuple[int, int]:
    """(mid to use, new counter) given the stored counter (the lowest mid never used yet).

    explicit: a mid the caller asked for; it must be an active mid (a refresh) or not below the counter.
    rollover_allowed: no attack is going on, so at 3/4 of 2^32-1 the counter restarts at 0 (§4.4.1.1).
    """
    if explicit is not None:
        if not 0 <= explicit <= MID_MAX:
            raise ScopeError(f"mid {explicit} is outside 0-{MID_MAX}")
        if explicit in active:
            return explicit, counter
        if explicit < counter:
            raise ScopeError(
                f"mid {explicit} is lower than mids already used (next free: {counter}); "
                "mids must increase monotonically (RFC 9132 §4.4.1.1)"
            )
        return explicit, explicit + 1
    if counter > MID_ROLLOVER and rollover_allowed:
        counter = 0
        while counter in active:  # never collide with a mitigation that survived the rollover
            counter += 1
    if counter > MID_MAX:
        raise ScopeError("mid space exhausted; withdraw active mitigations so the mid can roll over")
    return counter, counter + 1


@dataclass(frozen=True)
class StoredMitigation:
    mid: int
    scope: MitigationScope
    expires_at: float | None
    """Wall-clock time the granted lifetime ends; None: indefinite or not yet granted."""


class ClientState(Protocol):
    """Durable client state for one cuid."""

    cuid: str

    def allocate_mid(self, explicit: int | None = None, *, rollover_allowed: bool = True) -> int:
        """Reserve a mid; it is durable before this returns."""
        ...

    def peek_next_mid(self) -> int: ...

    def allocate_sid(self) -> int: ...

    def save_mitigation(self, mitigation: StoredMitigation) -> None: ...

    def delete_mitigation(self, mid: int) -> None: ...

    def load_mitigations(self) -> list[StoredMitigation]: ...

    def save_session_config(self, sid: int, body: dict[str, Any]) -> None: ...

    def delete_session_config(self) -> None: ...

    def load_session_config(self) -> tuple[int, dict[str, Any]] | None: ...

    def allocate_tsid(self, *, above: int | None = None) -> int:
        """RFC 9244 §7: 'tsid's increase monotonically; durable before the request leaves. ABOVE: a tsid the server
        holds, which the new one must exceed."""
        ...

    def allocate_tmid(self, explicit: int | None = None, *, held: Set[int] = frozenset()) -> int:
        """RFC 9244 §8.2: 'tmid's increase monotonically; EXPLICIT may repeat one of HELD (an update)."""
        ...

    def save_telemetry_setup(self, kind: str, tsid: int, entry: dict[str, Any]) -> None: ...

    def delete_telemetry_setup(self, kind: str) -> None: ...

    def load_telemetry_setups(self) -> dict[str, tuple[int, dict[str, Any]]]: ...


def next_id(counter: int, explicit: int | None, held: Set[int], name: str) -> tuple[int, int]:
    """(id to use, new counter) for tsid/tmid numbering: the counter is the lowest id never used; an EXPLICIT id
    must be one of HELD (an update of it) or not below the counter."""
    if explicit is None:
        explicit = counter
    elif explicit in held:
        return explicit, counter
    if not 0 <= explicit <= MID_MAX:
        raise ScopeError(f"{name} {explicit} is outside 0-{MID_MAX}")
    if explicit < counter:
        raise ScopeError(
            f"{name} {explicit} is lower than {name}s already used (next free: {counter}); RFC 9244 "
            f"wants them to increase monotonically"
        )
    return explicit, explicit + 1
