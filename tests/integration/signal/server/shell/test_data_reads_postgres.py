"""The signal channel's reads of the data channel (RFC 8783 aliases a mitigation request names, RFC 9132
§4.4.1.3) when the data channel's store is PostgreSQL: they wait for the database in a worker thread before the
decision, so a stalled database holds up only the request that needs it. Another client's heartbeat and GET are
answered meanwhile, and the stalled request gets 5.03 with a diagnostic once the store's timeout passes, nothing
stored; once the database answers again the alias resolves, read off the loop (no read left on it)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.mitigate.base import LoggingMitigator
from opendots.model import encode_signal
from opendots.signal.server.core import Request
from opendots.signal.server.shell.run import start_signal_server
from opendots.store.postgres_data import PostgresDataChannelStore
from tests.conftest import free_port
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(90)

STORE_TIMEOUT = 2.0
WAITING_ON_ALIASES = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'data_aliases'::regclass"
HEARTBEAT = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}


def _put(cuid: str, mid: int, entry: dict) -> Request:
    body = {SCOPE: {"scope": [{**entry, "lifetime": 3600}]}}
    return Request("PUT", ("mitigate", f"cuid={cuid}", f"mid={mid}"), peer=cuid, payload=encode_signal(body))


def _data_post(core: DataChannelCore, cuid: str, path: str, body: dict) -> None:
    request = RestconfRequest(
        "POST",
        "/ietf-dots-data-channel:dots-data" + path,
        cuid,
        body=json.dumps(body).encode(),
        content_type="application/yang-data+json",
    )
    assert core.handle(request, time.time()).status == 201


async def test_a_stalled_alias_read_holds_up_only_its_own_request_which_gets_503(
    pki_dir: Path, tmp_path: Path, postgres_url: str
):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    cuids = {c.name: c.cuid for c in config.clients}
    client, other = cuids["client"], cuids["other"]
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url, timeout=STORE_TIMEOUT)
    data = DataChannelCore(store, config.client_by_cuid)
    for path, body in (
        ("", {"ietf-dots-data-channel:dots-client": [{"cuid": client}]}),
        (
            f"/dots-client={client}",
            {"ietf-dots-data-channel:aliases": {"alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]}},
        ),
    ):
        await asyncio.to_thread(_data_post, data, client, path, body)
    running = await start_signal_server(
        config, bind=[("127.0.0.1", free_port())], tls=False, mitigator=LoggingMitigator(), data_channel=data
    )
    service = running.service
    holder = await asyncpg.connect(postgres_url)
    try:
        assert service.data_reads is not None and service.data_reads.remote
        assert (await service.answer(_put(other, 1, {"target-prefix": ["203.0.113.0/28"]}))).code == "2.01"

        # A real stall: another session holds a lock every read of the aliases waits for.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_aliases IN ACCESS EXCLUSIVE MODE")
        stalled = asyncio.create_task(service.answer(_put(client, 1, {"alias-name": ["web"]})))
        waiting = 0
        while not waiting and not stalled.done():
            await asyncio.sleep(0.01)  # this loop turns only while the alias read waits elsewhere
            waiting = await holder.fetchval(WAITING_ON_ALIASES)
        assert waiting, "the alias read never waited for the database while the loop ran"

        # The other client is served meanwhile: its heartbeat (RFC 9132 §4.7) and its GET.
        assert (await service.answer(Request("PUT", ("hb",), peer=other, body=HEARTBEAT))).code == "2.04"
        got = await service.answer(Request("GET", ("mitigate", f"cuid={other}", "mid=1"), peer=other))
        assert got.code == "2.05"
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
        await running.stop()
        await asyncio.to_thread(store.close)
