"""The router's restore replaces what its actuators hold, also on an actuator without a `restore` of its own: a
cluster node re-applying after a gap in its lease checks (opendots.signal.server.shell.lease_fence) must drop what
was withdrawn or expired meanwhile, not only add what is still active."""

from __future__ import annotations

import ipaddress

from opendots.mitigate.base import LoggingMitigator, MitigationScope, MitigatorError
from opendots.mitigate.router import Assignment, MitigatorRouter, held_keys


def scope(key: str, prefix: str) -> MitigationScope:
    return MitigationScope(key=key, target_prefixes=(ipaddress.ip_network(prefix),))


class StuckMitigator(LoggingMitigator):
    """Keeps what it holds: every withdrawal fails (a speaker that went away)."""

    async def withdraw(self, key: str) -> None:
        raise MitigatorError("cannot withdraw")


async def test_a_second_restore_withdraws_what_the_first_placed_and_the_second_no_longer_holds():
    plain = LoggingMitigator(name="plain")
    router = MitigatorRouter([Assignment(plain, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))])
    await router.restore([scope("c/1", "192.0.2.1/32"), scope("c/2", "192.0.2.2/32")])
    await router.apply(scope("c/3", "192.0.2.3/32"))  # applied between the two, ended meanwhile too
    assert held_keys(router) == {"c/1", "c/2", "c/3"}

    refused = await router.restore([scope("c/2", "192.0.2.2/32")])

    assert refused == {}
    assert held_keys(router) == {"c/2"} == set(plain.active)


async def test_a_withdrawal_that_fails_during_restore_does_not_keep_the_active_mitigations_from_being_applied():
    stuck = StuckMitigator(name="stuck")
    router = MitigatorRouter([Assignment(stuck, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))])
    await router.restore([scope("c/1", "192.0.2.1/32")])

    refused = await router.restore([scope("c/2", "192.0.2.2/32")])

    assert refused == {}
    assert set(stuck.active) == {"c/1", "c/2"}  # c/1 could not go; c/2 is enforced all the same


def test_held_keys_is_unknown_when_an_actuator_cannot_tell_what_it_holds():
    class Opaque:
        name = "opaque"

    router = MitigatorRouter([Assignment(Opaque(), prefixes=())])  # type: ignore[arg-type]
    assert held_keys(router) is None
