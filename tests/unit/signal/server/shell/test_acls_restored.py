"""RFC 9133 ACLs on a cluster node that takes the mitigator lease again or reconciles after late lease checks
(opendots.signal.server.shell.lease_fence): the mitigators' restore replaces all an actuator holds, its ACLs too
(nftables rebuilds its table), so the enforcer applies every ACL it enforced again rather than believing it is
still in place."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.data.records import DataChannelQuery
from opendots.mitigate.base import LoggingMitigator, MitigationScope
from opendots.mitigate.router import Assignment, MitigatorRouter
from opendots.signal.server.shell.acls import AclEnforcer
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase

ACL = {
    "name": "now",
    "activation-type": "immediate",
    "aces": {"ace": [{"name": "a", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "drop"}}]},
}


class ReplacingActuator(LoggingMitigator):
    """Records ACLs; its restore replaces everything it holds, ACLs included, as NftablesMitigator.restore does
    when handed no ACLs (what the router's restore hands it)."""

    def __init__(self) -> None:
        super().__init__(name="replacing")
        self.acls: dict[str, object] = {}

    async def apply_acl(self, policy) -> None:  # type: ignore[no-untyped-def]
        self.acls[policy.key] = policy

    async def withdraw_acl(self, key: str) -> None:
        self.acls.pop(key, None)

    async def restore(self, scopes: Iterable[MitigationScope]) -> dict:  # type: ignore[type-arg]
        self.active = {scope.key: scope for scope in scopes}
        self.acls = {}
        return {}


async def test_after_the_mitigators_are_restored_every_enforced_acl_is_applied_again(
    server_config: ServerConfig, tmp_path
):
    cuid = server_config.clients[0].cuid
    data = DataChannelCore(SqliteDataChannelStore(SqliteDatabase(tmp_path / "d.db")), server_config.client_by_cuid)
    actuator = ReplacingActuator()
    router = MitigatorRouter([Assignment(actuator)], {c.cuid: c.name for c in server_config.clients})
    enforcer = AclEnforcer(
        DataChannelQuery(data.store),
        router,
        server_config.client_by_cuid,
        mitigating=lambda _: False,
        known_cuids=lambda: [cuid],
    )
    for path, body in (
        ("", {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]}),
        (f"/dots-client={cuid}", {"ietf-dots-data-channel:acls": {"acl": [ACL]}}),
    ):
        request = RestconfRequest(
            "POST",
            "/ietf-dots-data-channel:dots-data" + path,
            cuid,
            body=json.dumps(body).encode(),
            content_type="application/yang-data+json",
        )
        assert data.handle(request, time.time()).status == 201
    await enforcer.start()
    try:
        assert list(actuator.acls) == [f"{cuid}/now"]

        await router.restore([])  # the lease taken again: SignalService.drive restores the mitigators
        assert actuator.acls == {}
        enforcer.restored()
        await enforcer.idle()

        assert list(actuator.acls) == [f"{cuid}/now"]
        assert enforcer.enforced(cuid) == [f"{cuid}/now"]
    finally:
        await enforcer.stop()
