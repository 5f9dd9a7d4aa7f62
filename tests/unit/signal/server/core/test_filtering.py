"""The ACL activation decision (opendots.signal.server.core.filtering): pure functions, fake `now`, no sockets."""

from __future__ import annotations

import ipaddress
import time

import pytest

from opendots.data.records import Ace, AceAction, AceMatch, Acl
from opendots.mitigate.base import LoggingMitigator, MitigatorError
from opendots.mitigate.nftables_acl import policy_from_record
from opendots.mitigate.router import Assignment, MitigatorRouter
from opendots.signal.server.core.filtering import acl_key, acls_to_enforce, next_expiry, plan_change

NOW = 1_000_000.0
DROP_UDP = Ace("drop-udp", AceMatch(family=4, protocol=17, transport="udp"), AceAction("drop"))


def acl(name: str, activation: str, expires: float | None = NOW + 100, cuid: str = "cuid-a") -> Acl:
    return Acl(cuid, name, "ipv4-acl-type", activation, (DROP_UDP,), expires)


def names(acls: list[Acl]) -> list[str]:
    return [a.name for a in acls]


@pytest.mark.parametrize(
    ("activation", "mitigating", "enforced"),
    [
        ("immediate", False, True),
        ("immediate", True, True),
        ("activate-when-mitigating", False, False),
        ("activate-when-mitigating", True, True),
        ("deactivate", False, False),
        ("deactivate", True, False),
    ],
)
def test_activation_types(activation: str, mitigating: bool, enforced: bool):
    assert bool(acls_to_enforce([acl("a", activation)], mitigating, NOW)) is enforced


def test_expired_acls_are_never_enforced_and_order_is_kept():
    acls = [
        acl("first", "immediate"),
        acl("stale", "immediate", expires=NOW),
        acl("second", "activate-when-mitigating", expires=None),
        acl("third", "immediate"),
    ]
    assert names(acls_to_enforce(acls, True, NOW)) == ["first", "second", "third"]
    assert names(acls_to_enforce(acls, False, NOW)) == ["first", "third"]
    # The next expiry of a live ACL is when enforcement must be re-decided; already expired ones do not count.
    assert next_expiry(acls, NOW) == NOW + 100
    assert next_expiry(acls, NOW + 100) is None
    assert names(acls_to_enforce(acls, True, NOW + 100)) == ["second"]


def test_plan_adds_removes_and_replaces_in_place():
    a, b, c = acl("a", "immediate"), acl("b", "immediate"), acl("c", "immediate")
    assert plan_change([], [a, b]).apply == (a, b)
    assert plan_change([a, b], [a, b]).empty
    removed = plan_change([a, b, c], [a, c])
    assert removed.withdraw == (acl_key(b),) and removed.apply == ()
    appended = plan_change([a], [a, b])
    assert appended.withdraw == () and appended.apply == (b,)
    changed_b = Acl("cuid-a", "b", "ipv4-acl-type", "immediate", (), NOW + 100)
    replaced = plan_change([a, b, c], [a, changed_b, c])
    assert replaced.withdraw == () and replaced.apply == (changed_b,)


def test_plan_reapplies_what_follows_an_inserted_acl():
    a, b, c = acl("a", "immediate"), acl("b", "immediate"), acl("c", "immediate")
    inserted = plan_change([a, c], [a, b, c])
    assert inserted.withdraw == (acl_key(c),) and inserted.apply == (b, c)
    reordered = plan_change([a, b, c], [c, a, b])
    assert reordered.withdraw == tuple(acl_key(x) for x in (a, b, c)) and reordered.apply == (c, a, b)
    everything_gone = plan_change([a, b], [])
    assert everything_gone.withdraw == (acl_key(a), acl_key(b)) and everything_gone.apply == ()


class AclRecorder(LoggingMitigator):
    """An actuator that enforces ACLs by recording them (the router's routing is what is under test)."""

    def __init__(self, name: str, refuse: bool = False) -> None:
        super().__init__()
        self.name = name
        self.refuse = refuse
        self.acls: dict[str, object] = {}

    async def apply_acl(self, policy) -> None:
        if self.refuse:
            raise MitigatorError("refused")
        self.acls[policy.key] = policy

    async def withdraw_acl(self, key: str) -> None:
        self.acls.pop(key, None)


async def test_router_hands_acls_only_to_acl_capable_actuators_of_the_client():
    net = ipaddress.ip_network
    nft_a = AclRecorder("nft-a")
    nft_b_half = AclRecorder("nft-b")
    bgp_like = LoggingMitigator()
    router = MitigatorRouter(
        [
            Assignment(nft_a, frozenset({"alice"})),
            Assignment(nft_b_half, frozenset(), (net("203.0.113.0/25"),)),
            Assignment(bgp_like),
        ],
        {"cuid-a": "alice", "cuid-b": "bob"},
    )
    domain = (net("203.0.113.0/24"), net("2001:db8::/32"))
    policy = policy_from_record(acl("x", "immediate", cuid="cuid-a"), domain)
    await router.apply_acl(policy)
    assert list(nft_a.acls) == ["cuid-a/x"] and nft_a.acls["cuid-a/x"].domain == domain
    # The prefix-limited actuator gets the ACL confined to its own part of the client's domain.
    assert nft_b_half.acls["cuid-a/x"].domain == (net("203.0.113.0/25"),)
    bob = policy_from_record(acl("y", "immediate", cuid="cuid-b"), (net("198.51.100.0/24"),))
    with pytest.raises(MitigatorError, match="no configured mitigator can enforce"):
        await router.apply_acl(bob)  # not alice, not inside nft-b's prefixes, logging has no ACL support
    await router.withdraw_acl("cuid-a/x")
    assert nft_a.acls == {} and nft_b_half.acls == {}
    assert router.active_acls == []


async def test_router_reports_a_refusal_but_keeps_the_other_actuators_enforcing():
    good, bad = AclRecorder("good"), AclRecorder("bad", refuse=True)
    router = MitigatorRouter([Assignment(good), Assignment(bad)], {"cuid-a": "alice"})
    policy = policy_from_record(acl("x", "immediate"), (ipaddress.ip_network("203.0.113.0/24"),))
    with pytest.raises(MitigatorError, match="bad: refused"):
        await router.apply_acl(policy)
    assert "cuid-a/x" in good.acls
    await router.withdraw_acl("cuid-a/x")
    assert good.acls == {}


async def test_enforcer_reports_an_acl_nobody_can_enforce(server_config, tmp_path):
    """The asyncio edge on a real data-channel store: with only a logging actuator the ACL is refused, reported."""
    import json

    from opendots.data.core import DataChannelCore, RestconfRequest
    from opendots.data.records import DataChannelQuery
    from opendots.mitigate.router import build_router
    from opendots.signal.server.shell.acls import AclEnforcer
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase

    cuid = server_config.clients[0].cuid
    service = DataChannelCore(SqliteDataChannelStore(SqliteDatabase(tmp_path / "d.db")), server_config.client_by_cuid)
    enforcer = AclEnforcer(
        DataChannelQuery(service.store),
        build_router(server_config),  # no [[mitigators]]: the logging actuator alone, which has no ACL support
        server_config.client_by_cuid,
        mitigating=lambda _: False,
        known_cuids=lambda: [cuid],
    )
    service.subscribe(enforcer.client_changed)
    await enforcer.start()
    try:
        for path, body in (
            ("", {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]}),
            (
                f"/dots-client={cuid}",
                {
                    "ietf-dots-data-channel:acls": {
                        "acl": [
                            {
                                "name": "now",
                                "activation-type": "immediate",
                                "aces": {
                                    "ace": [
                                        {
                                            "name": "a",
                                            "matches": {"ipv4": {"protocol": 17}},
                                            "actions": {"forwarding": "drop"},
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                },
            ),
        ):
            request = RestconfRequest(
                "POST",
                "/ietf-dots-data-channel:dots-data" + path,
                cuid,
                body=json.dumps(body).encode(),
                content_type="application/yang-data+json",
            )
            assert service.handle(request, time.time()).status == 201
        await enforcer.idle()
        assert "no configured mitigator can enforce" in enforcer.refused[f"{cuid}/now"]
        assert enforcer.enforced(cuid) == [f"{cuid}/now"]  # tracked, so a later delete withdraws whatever was placed
        request = RestconfRequest("DELETE", f"/ietf-dots-data-channel:dots-data/dots-client={cuid}/acls/acl=now", cuid)
        assert service.handle(request, time.time()).status == 204
        await enforcer.idle()
        assert enforcer.refused == {} and enforcer.enforced(cuid) == []
    finally:
        await enforcer.stop()


async def test_a_client_without_acls_is_not_queried_per_mitigation_until_the_data_channel_changes(
    server_config, tmp_path
):
    """Mitigation events of a client with no stored ACL cost no store query; an ACL it adds afterwards (through the
    data channel) is still enforced at its next mitigation event."""
    import json

    from opendots.data.core import DataChannelCore, RestconfRequest
    from opendots.data.records import DataChannelQuery
    from opendots.mitigate.router import Assignment, MitigatorRouter
    from opendots.signal.server.shell.acls import AclEnforcer
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase

    client = server_config.clients[0]
    service = DataChannelCore(SqliteDataChannelStore(SqliteDatabase(tmp_path / "d.db")), server_config.client_by_cuid)
    query = DataChannelQuery(service.store)
    lookups: list[str] = []

    class CountingQuery:
        def acls_for(self, cuid: str, activation_type: str | None = None) -> list[Acl]:
            lookups.append(cuid)
            return query.acls_for(cuid, activation_type)

    counting = CountingQuery()
    recorder = AclRecorder("nft")
    mitigating = {"on": False}
    enforcer = AclEnforcer(
        counting,
        MitigatorRouter([Assignment(recorder)], {client.cuid: client.name}),
        server_config.client_by_cuid,
        mitigating=lambda _: mitigating["on"],
        known_cuids=lambda: [client.cuid],
    )
    service.subscribe(enforcer.client_changed)
    await enforcer.start()
    try:
        lookups.clear()
        for _ in range(5):
            enforcer.mitigations_changed(client.name, {client.cuid})
            await enforcer.idle()
        assert lookups == []  # the start-up reconciliation found none: no query per mitigation event
        body = {
            "ietf-dots-data-channel:acls": {
                "acl": [
                    {
                        "name": "when",
                        "activation-type": "activate-when-mitigating",
                        "aces": {
                            "ace": [
                                {"name": "a", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "drop"}}
                            ]
                        },
                    }
                ]
            }
        }
        for path, payload in (
            ("", {"ietf-dots-data-channel:dots-client": [{"cuid": client.cuid}]}),
            (f"/dots-client={client.cuid}", body),
        ):
            request = RestconfRequest(
                "POST",
                "/ietf-dots-data-channel:dots-data" + path,
                client.cuid,
                body=json.dumps(payload).encode(),
                content_type="application/yang-data+json",
            )
            assert service.handle(request, time.time()).status == 201
        await enforcer.idle()
        assert recorder.acls == {}  # not mitigating yet
        mitigating["on"] = True
        enforcer.mitigations_changed(client.name, {client.cuid})
        await enforcer.idle()
        assert list(recorder.acls) == [f"{client.cuid}/when"]
    finally:
        await enforcer.stop()
