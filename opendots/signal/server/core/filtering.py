"""Which data-channel ACLs (RFC 8783 §7.3, RFC 9133) must be enforced for one DOTS client, sans I/O.

    wanted = acls_to_enforce(acls, mitigating=True, now=now)
    change = plan_change(enforced, wanted)       # enforced: what the mitigators hold now, in order
    ... withdraw change.withdraw, then apply change.apply in order ...
    deadline = next_expiry(acls, now)            # re-decide then: an ACL's lifetime ended (§3.5)

Activation types: `immediate` ACLs are enforced at once, `activate-when-mitigating` ones only while the client has
an active mitigation, `deactivate` ones never; an ACL whose lifetime ran out is never enforced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

IMMEDIATE = "immediate"
WHEN_MITIGATING = "activate-when-mitigating"
DEACTIVATE = "deactivate"


class AclLike(Protocol):
    """What the decision reads of an ACL (opendots.data.records.Acl satisfies it)."""

    @property
    def cuid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def activation_type(self) -> str: ...
    @property
    def expires(self) -> float | None: ...


A = TypeVar("A", bound=AclLike)


def acl_key(acl: AclLike) -> str:
    """The mitigator key of an ACL: unique per client ACL."""
    return f"{acl.cuid}/{acl.name}"


def is_live(acl: AclLike, now: float) -> bool:
    return acl.expires is None or acl.expires > now


def must_enforce(acl: AclLike, mitigating: bool, now: float) -> bool:
    if not is_live(acl, now):
        return False
    if acl.activation_type == IMMEDIATE:
        return True
    return acl.activation_type == WHEN_MITIGATING and mitigating


def acls_to_enforce(acls: Iterable[A], mitigating: bool, now: float) -> list[A]:
    """The ACLs to enforce, in the client's configured order (the order ACEs are evaluated in, RFC 8519)."""
    return [acl for acl in acls if must_enforce(acl, mitigating, now)]


def next_expiry(acls: Iterable[AclLike], now: float) -> float | None:
    """When the first still-live ACL expires: enforcement must be re-decided then."""
    deadlines = [acl.expires for acl in acls if acl.expires is not None and acl.expires > now]
    return min(deadlines) if deadlines else None


@dataclass(frozen=True)
class FilteringChange(Generic[A]):
    withdraw: tuple[str, ...] = ()
    """Keys to withdraw first."""
    apply: tuple[A, ...] = ()
    """Then ACLs to apply, in this order (each one goes after those applied before it)."""

    @property
    def empty(self) -> bool:
        return not self.withdraw and not self.apply


def plan_change(enforced: Sequence[A], wanted: Sequence[A]) -> FilteringChange[A]:
    """The smallest change turning ENFORCED (in enforcement order) into WANTED (in configured order).

    Mitigators append a new ACL after the others and replace a changed one in place, so an ACL inserted or
    moved before enforced ones forces those after it to be withdrawn and re-applied in order.
    """
    wanted_keys = [acl_key(acl) for acl in wanted]
    gone = [acl_key(acl) for acl in enforced if acl_key(acl) not in set(wanted_keys)]
    kept = [acl for acl in enforced if acl_key(acl) in set(wanted_keys)]
    stable = 0  # wanted[:stable] are enforced at the same rank: they can stay where they are
    while stable < len(kept) and acl_key(kept[stable]) == wanted_keys[stable]:
        stable += 1
    withdraw = gone + [acl_key(acl) for acl in kept[stable:]]
    apply = [new for old, new in zip(kept[:stable], wanted[:stable], strict=True) if old != new]
    apply += wanted[stable:]
    return FilteringChange(tuple(withdraw), tuple(apply))


@dataclass(frozen=True)
class AclActivation:
    """RFC 9133 §3.2.1: mitigation request MID asks that ACL NAME of CUID be enforced per ACTIVATION_TYPE.

    The core decides these (Decision.acl_activations); the shell stores them (AclActivationStore) before the
    mitigation, and the data channel's subscribers enforce them."""

    cuid: str
    name: str
    activation_type: str
    mid: int


class AclActivationControl(Protocol):
    """The data channel's ACLs as the signal-channel core reads them for RFC 9133 filter control (sans I/O)."""

    def acl_exists(self, cuid: str, name: str, now: float) -> bool:
        """True when the client identified by CUID has a live ACL NAME (another client's ACLs are never seen)."""
        ...

    def activation_type(self, cuid: str, name: str, now: float) -> str | None:
        """The ACL's current activation type (None: no such live ACL)."""
        ...

    def enforcement_problem(self, cuid: str, name: str, activation_type: str, now: float) -> str | None:
        """Why the mitigators could not enforce the ACL with this activation type, or None (RFC 9133: 5.03)."""
        ...


class AclActivationStore(Protocol):
    """Where the shell stores the activation changes a decision carries (the data channel's store)."""

    def set_activation(self, activation: AclActivation, now: float) -> None:
        """Store the new activation type (and refresh the ACL's lifetime); raises when it cannot be stored."""
        ...
