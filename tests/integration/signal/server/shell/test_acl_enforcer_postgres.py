"""RFC 9133 ACL enforcement reading the data channel's ACLs from PostgreSQL: the re-read after a data-channel change
waits for the database in a worker thread, so a stalled database never stalls the event loop (and with it every
client's signal channel); once the database answers again, the ACL is reconciled."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg

from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.data.records import DataChannelQuery
from opendots.mitigate.router import build_router
from opendots.signal.server.shell.acls import AclEnforcer
from opendots.store.postgres_data import PostgresDataChannelStore

WAITING_ON_ACLS = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'data_acls'::regclass"
ACL = {
    "name": "now",
    "activation-type": "immediate",
    "aces": {"ace": [{"name": "a", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "drop"}}]},
}


async def test_acl_re_reads_wait_for_a_stalled_database_off_the_event_loop(
    server_config: ServerConfig, postgres_url: str
):
    cuid = server_config.clients[0].cuid
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url, timeout=3.0)
    service = DataChannelCore(store, server_config.client_by_cuid)
    enforcer = AclEnforcer(
        DataChannelQuery(store),
        build_router(server_config),  # the logging actuator: every ACL is refused, reported in `refused`
        server_config.client_by_cuid,
        mitigating=lambda _: False,
        known_cuids=lambda: [cuid],
    )
    holder = await asyncpg.connect(postgres_url)
    try:
        await enforcer.start()
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
            assert (await asyncio.to_thread(service.handle, request, time.time())).status == 201

        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_acls IN ACCESS EXCLUSIVE MODE")
        enforcer.client_changed(cuid)  # what a data-channel commit (or another node's NOTIFY) calls
        waiting = 0
        while not waiting and (enforcer._busy or enforcer._dirty):
            await asyncio.sleep(0.01)  # this loop turns only while the enforcer's read waits elsewhere
            waiting = await holder.fetchval(WAITING_ON_ACLS)
        assert waiting, "the ACL re-read never waited for the database while the loop ran"
        await transaction.rollback()

        await enforcer.idle()
        assert "no configured mitigator can enforce" in enforcer.refused[f"{cuid}/now"]
    finally:
        await enforcer.stop()
        await holder.close()
        await asyncio.to_thread(store.close)
