"""The signal channel's use of the data channel (RFC 8783 aliases a mitigation request names, RFC 9132 §4.4.1.3; RFC
9133 'acl-list' activation changes) when both channels' stores are PostgreSQL (`db = "postgresql://..."`): the reads
wait for the database in a worker thread before the decision (another client's heartbeat and GET are answered
meanwhile), and before a notification that shows ACLs, the activation write in one while the decision is settled (the
loop turns meanwhile); the stalled request gets 5.03 with a diagnostic once the store's timeout passes, nothing
stored; once the database answers again the request is decided, with no read left on the loop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiocoap
import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore
from opendots.mitigate.base import LoggingMitigator
from opendots.model import decode_signal, encode_signal
from opendots.signal.server.core import Request, Status
from opendots.signal.server.shell.run import start_signal_server
from opendots.store.postgres_data import PostgresDataChannelStore
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files
from tests.helpers.data_harness import post_to_core
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(90)

STORE_TIMEOUT = 2.0
WAITING_ON_ALIASES = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'data_aliases'::regclass"
WAITING_ON_ACLS = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'data_acls'::regclass"
ACL = {
    "name": "now",
    "activation-type": "activate-when-mitigating",
    "aces": {"ace": [{"name": "a", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "drop"}}]},
}
HEARTBEAT = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}


def _put(cuid: str, mid: int, entry: dict) -> Request:
    body = {SCOPE: {"scope": [{**entry, "lifetime": 3600}]}}
    return Request("PUT", ("mitigate", f"cuid={cuid}", f"mid={mid}"), peer=cuid, payload=encode_signal(body))


@pytest.fixture
async def server(pki_dir: Path, tmp_path: Path, postgres_url: str):
    """A signal server with both stores on PostgreSQL (as `db = "postgresql://..."` makes them), the client's
    alias "web" and ACL "now" created over the data channel; yields (server, data store, cuids)."""
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.db_url = tmp_path / "signal.db", postgres_url
    cuids = {c.name: c.cuid for c in config.clients}
    client = cuids["client"]
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url, timeout=STORE_TIMEOUT)
    data = DataChannelCore(store, config.client_by_cuid)
    aliases = {"alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]}
    for path, body in (
        ("", {"ietf-dots-data-channel:dots-client": [{"cuid": client}]}),
        (f"/dots-client={client}", {"ietf-dots-data-channel:aliases": aliases}),
        (f"/dots-client={client}", {"ietf-dots-data-channel:acls": {"acl": [ACL]}}),
    ):
        await asyncio.to_thread(post_to_core, data, client, path, body)
    running = await start_signal_server(
        config, bind=[("127.0.0.1", free_port())], tls=False, mitigator=LoggingMitigator(), data_channel=data
    )
    try:
        assert running.service.data_reads is not None and running.service.data_reads.remote
        yield running, store, cuids
    finally:
        await running.stop()
        await asyncio.to_thread(store.close)


async def _others_are_served(service, other: str) -> None:
    """The other client's heartbeat (RFC 9132 §4.7) and GET are answered while a request of the first waits."""
    assert (await service.answer(Request("PUT", ("hb",), peer=other, body=HEARTBEAT))).code == "2.04"
    got = await service.answer(Request("GET", ("mitigate", f"cuid={other}", "mid=1"), peer=other))
    assert got.code == "2.05"


async def _stall(holder: asyncpg.Connection, request, waiting_query: str) -> asyncio.Task:
    stalled = asyncio.create_task(request)
    waiting = 0
    while not waiting and not stalled.done():
        await asyncio.sleep(0.01)  # this loop turns only while the request waits for the database elsewhere
        waiting = await holder.fetchval(waiting_query)
    assert waiting, "the request never waited for the database while the loop ran"
    return stalled


async def test_a_stalled_alias_read_holds_up_only_its_own_request_which_gets_503(server, postgres_url: str):
    running, _, cuids = server
    service, client, other = running.service, cuids["client"], cuids["other"]
    holder = await asyncpg.connect(postgres_url)
    try:
        assert (await service.answer(_put(other, 1, {"target-prefix": ["203.0.113.0/28"]}))).code == "2.01"

        # A real stall: another session holds a lock every read of the aliases waits for.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_aliases IN ACCESS EXCLUSIVE MODE")
        stalled = await _stall(holder, service.answer(_put(client, 1, {"alias-name": ["web"]})), WAITING_ON_ALIASES)
        await _others_are_served(service, other)
        assert await holder.fetchval(WAITING_ON_ALIASES) == 1, "answered only after the stalled read gave up"
        assert not stalled.done()

        refused = await stalled
        assert refused.code == "5.03"
        assert "data channel's store did not answer" in (refused.diagnostic or ""), refused
        await transaction.rollback()
        assert service.core.table.get((client, 1)) is None  # nothing decided, nothing stored

        # The database answers again: the alias is read off the loop and the request decided on it.
        assert (await service.answer(_put(client, 1, {"alias-name": ["web"]}))).code == "2.01"
        assert service.data_reads.unfetched == 0
        held = service.core.table.get((client, 1))
        assert held is not None and [str(p) for p in held.targets.target_prefixes] == ["192.0.2.1/32"]
    finally:
        await holder.close()


async def test_a_stalled_acl_activation_write_holds_up_only_its_own_request_which_gets_503(server, postgres_url: str):
    """RFC 9133 §3.2.1: an 'acl-list' change is written to the data channel's store before the mitigation; a write
    the database does not take in time is a 5.03 naming the ACL update (Figure 1), the mitigation not created."""
    running, store, cuids = server
    service, client, other = running.service, cuids["client"], cuids["other"]
    acl_list = {"ietf-dots-signal-control:acl-list": [{"acl-name": "now", "activation-type": "deactivate"}]}
    request = _put(client, 2, {"target-prefix": ["192.0.2.0/28"], **acl_list})
    holder = await asyncpg.connect(postgres_url)
    try:
        assert (await service.answer(_put(other, 1, {"target-prefix": ["203.0.113.0/28"]}))).code == "2.01"

        # Reads of the ACLs go on (EXCLUSIVE lets SELECT through); the activation's UPDATE waits.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_acls IN EXCLUSIVE MODE")
        # The loop turns while the write waits (the polling in _stall runs on it). Other signal requests wait
        # for this decision to be settled, as behind any awaited write (one decision at a time, service.py).
        stalled = await _stall(holder, service.answer(request), WAITING_ON_ACLS)
        assert not stalled.done()

        refused = await stalled
        assert refused.code == "5.03" and "ACL update failed" in (refused.diagnostic or ""), refused
        await transaction.rollback()
        assert service.core.table.get((client, 2)) is None

        assert (await service.answer(request)).code == "2.01"
        stored = await asyncio.to_thread(store.get_acl, client, "now", time.time())
        assert stored is not None and stored.body["activation-type"] == "deactivate"
        assert service.data_reads.unfetched == 0
    finally:
        await holder.close()


async def test_a_row_another_node_wrote_naming_an_alias_is_taken_in_with_the_alias_read_off_the_loop(
    server, postgres_url: str
):
    """Several nodes (RFC 9132 §4.4.1.3 aliases): a mitigation stored by another node is resolved when this node
    takes it in; its alias is read in a worker thread (the loop turns while the database stalls), and the row is
    taken in once the database answers, with the alias's prefixes."""
    running, _, cuids = server
    service, client = running.service, cuids["client"]
    holder = await asyncpg.connect(postgres_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_aliases IN ACCESS EXCLUSIVE MODE")
        writer = await asyncpg.connect(postgres_url)  # "another node": its NOTIFY wakes this one
        try:
            await writer.execute(
                "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
                " VALUES ($1, 7, 'client', $2, 3600, 2, $3)",
                client,
                json.dumps({"alias-name": ["web"], "lifetime": 3600}),
                time.time(),
            )
        finally:
            await writer.close()
        waiting = 0
        for _ in range(500):
            await asyncio.sleep(0.01)  # this loop turns only while the alias read waits elsewhere
            waiting = await holder.fetchval(WAITING_ON_ALIASES)
            if waiting:
                break
        assert waiting, "the node never read the alias while the loop ran"
        assert service.core.table.get((client, 7)) is None  # not taken in on a half-read
        await transaction.rollback()
        for _ in range(100):
            held = service.core.table.get((client, 7))
            if held is not None:
                break
            await asyncio.sleep(0.1)
        assert held is not None and [str(p) for p in held.targets.target_prefixes] == ["192.0.2.1/32"]
        assert service.data_reads.unfetched == 0
    finally:
        await holder.close()


async def test_notifications_read_the_acls_they_show_off_the_loop_while_other_clients_are_served(
    server, pki_dir: Path, postgres_url: str
):
    """RFC 9133 §3.2.1: a notification to an observer of the client's mitigations shows its 'acl-list' with the
    activation types as they are now, read of the data channel's store. With that store on PostgreSQL the read waits
    in a worker thread (the loop turns: another client's heartbeat and GET are answered while the ACLs are locked),
    and the notification goes out once the database answers, with the current activation type."""
    running, _, cuids = server
    service, client, other = running.service, cuids["client"], cuids["other"]
    acl_list = {"ietf-dots-signal-control:acl-list": [{"acl-name": "now", "activation-type": "deactivate"}]}
    assert (await service.answer(_put(client, 1, {"target-prefix": ["192.0.2.0/28"], **acl_list}))).code == "2.01"
    assert (await service.answer(_put(other, 1, {"target-prefix": ["203.0.113.0/28"]}))).code == "2.01"
    host, port = running.endpoint.dtls_addresses[0][:2]
    context = await create_client_context(tls_files(pki_dir, "client"), server_name="localhost")
    holder = await asyncpg.connect(postgres_url)
    try:
        uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={client}"
        observation = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        first = await asyncio.wait_for(observation.response, 15)
        assert first.code == aiocoap.CONTENT and first.opt.observe is not None
        notifications = observation.observation.__aiter__()

        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_acls IN ACCESS EXCLUSIVE MODE")
        running.service.report_status(f"{client}/1", Status.ATTACK_SUCCESSFULLY_MITIGATED)
        notified = asyncio.ensure_future(notifications.__anext__())
        waiting = 0
        for _ in range(500):
            await asyncio.sleep(0.01)  # this loop turns only while the notification's read waits elsewhere
            waiting = await holder.fetchval(WAITING_ON_ACLS)
            if waiting:
                break
        assert waiting, "the notification's ACL read never waited for the database while the loop ran"
        await _others_are_served(service, other)
        assert not notified.done()
        await transaction.rollback()

        notification = await asyncio.wait_for(notified, 15)
        entry = decode_signal(notification.payload)[SCOPE]["scope"][0]
        assert entry["status"] == Status.ATTACK_SUCCESSFULLY_MITIGATED.label
        assert entry["ietf-dots-signal-control:acl-list"] == acl_list["ietf-dots-signal-control:acl-list"]
        assert service.data_reads.unfetched == 0
    finally:
        await holder.close()
        await context.shutdown()
