"""The PostgreSQL signal store (opendots.store.postgres) on a throwaway cluster: the backend-independent store tests
of tests/unit/store (imported: they run here with this folder's `open_signal_store`, on PostgreSQL), its schema
migrations, StoreError with nothing kept when the database fails mid-transaction, and the signal shell's awaited
path (SignalService.answer) on it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from opendots.mitigate.base import LoggingMitigator
from opendots.signal.server.core import Request, ServerSettings, SignalServer
from opendots.signal.server.shell.service import SignalService
from opendots.store import postgres_state
from opendots.store.data_channel import MIGRATIONS as DATA_MIGRATIONS
from opendots.store.postgres import _MIGRATIONS, PostgresSignalStore, redacted, upgrade
from opendots.store.postgres_data import MIGRATIONS as POSTGRES_DATA_MIGRATIONS
from opendots.store.records import CuidRecord, MitigationRecord, SignalChanges, StoreError
from tests.helpers import signal_store_contract as contract
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, T0, mitigate_path, scope_body


# What every signal store must do (tests/helpers/signal_store_contract.py), here on PostgreSQL.
def test_changes_are_atomic(open_signal_store):
    contract.changes_are_atomic(open_signal_store)


def test_restart_recovers_mitigations_configs_and_cuid_owners(tmp_path, open_signal_store):
    contract.restart_recovers_mitigations_configs_and_cuid_owners(tmp_path, open_signal_store)


def test_telemetry_setups_are_put_replaced_deleted_and_loaded(open_signal_store):
    contract.telemetry_setups_are_put_replaced_deleted_and_loaded(open_signal_store)


def test_telemetry_reports_are_put_replaced_deleted_and_loaded(open_signal_store):
    contract.telemetry_reports_are_put_replaced_deleted_and_loaded(open_signal_store)


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def test_the_schema_is_migrated_once_and_its_version_recorded(postgres_url: str):
    first, second = await asyncio.gather(PostgresSignalStore.open(postgres_url), PostgresSignalStore.open(postgres_url))
    try:  # two nodes starting at once on one database: the advisory lock lets one migrate, the other sees it done
        async with first.pool.acquire() as connection:
            rows = await connection.fetch("SELECT component, version FROM schema_versions")
        assert sorted(tuple(row) for row in rows) == [
            ("signal", len(_MIGRATIONS)),
            ("signal_client_state", len(postgres_state.MIGRATIONS)),
        ]
        # `opendots db upgrade` on an up-to-date signal schema: the data channel's tables are added beside it
        assert await upgrade(postgres_url) == {
            "signal": len(_MIGRATIONS),
            "signal_client_state": len(postgres_state.MIGRATIONS),
            "data_channel": len(POSTGRES_DATA_MIGRATIONS),
        }
    finally:
        await first.close()
        await second.close()


async def test_a_database_migrated_by_a_newer_opendots_is_refused_not_written(postgres_url: str):
    await upgrade(postgres_url)
    await _execute(postgres_url, f"UPDATE schema_versions SET version = {len(_MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this OpenDOTS knows"):
        await PostgresSignalStore.open(postgres_url)


async def test_an_unreachable_database_is_a_store_error_without_the_password():
    url = "postgresql://dots:secret@127.0.0.1:1/dots?sslmode=disable"
    with pytest.raises(StoreError) as raised:
        await PostgresSignalStore.open(url)
    assert "secret" not in str(raised.value) and "dots:***@127.0.0.1:1" in str(raised.value)
    assert redacted("postgresql://u@h/d") == "postgresql://u@h/d"


async def test_a_change_failing_mid_transaction_is_a_store_error_and_keeps_nothing(postgres_url: str):
    store = await PostgresSignalStore.open(postgres_url)
    try:
        record = MitigationRecord("alpha", "c", 1, {"lifetime": 60}, 60, 2, T0, T0 + 60)
        await store.apply(SignalChanges(put_mitigations=[record]))
        before = await store.dump()
        # The delete runs first, then the CUID insert fails (its table is gone): the delete must be rolled back.
        await _execute(postgres_url, "ALTER TABLE signal_cuids RENAME TO signal_cuids_away")
        with pytest.raises(StoreError, match="signal_cuids"):
            await store.apply(SignalChanges(delete_mitigations=[("c", 1)], put_cuids=[CuidRecord("c", "alpha", T0)]))
        await _execute(postgres_url, "ALTER TABLE signal_cuids_away RENAME TO signal_cuids")
        assert await store.dump() == before
    finally:
        await store.close()


def _put(mid: int, prefix: str) -> Request:
    return Request("PUT", mitigate_path(ALPHA_CUID, mid), ALPHA_CUID, body=scope_body(target_prefix=[prefix]))


async def _service(url: str) -> tuple[SignalService, PostgresSignalStore]:
    store = await PostgresSignalStore.open(url)
    core = SignalServer(ServerSettings(clients=[ALPHA, BRAVO]), store.load(), T0)
    return SignalService(core, store, LoggingMitigator(), clock=lambda: T0), store


async def test_concurrent_requests_are_answered_once_durable_on_postgresql(postgres_url: str):
    """RFC 9132 §4.4.1: 2.01 only for what is stored; the shell decides one request at a time meanwhile."""
    service, store = await _service(postgres_url)
    try:
        assert service.awaited
        answers = await asyncio.gather(*(service.answer(_put(i + 1, f"192.0.2.{16 * i}/28")) for i in range(8)))
        assert [a.code for a in answers] == ["2.01"] * 8
        assert [row[1] for row in (await store.dump())["signal_mitigations"]] == list(range(1, 9))
        assert (await service.answer(_put(1, "192.0.2.0/28"))).code == "2.04"  # a refresh: the renewal path
    finally:
        await store.close()
    reopened = await PostgresSignalStore.open(postgres_url)
    try:
        assert [m.mid for m in reopened.load().mitigations] == list(range(1, 9))
    finally:
        await reopened.close()


async def test_a_write_postgresql_refuses_is_5_03_and_changes_nothing(postgres_url: str):
    service, store = await _service(postgres_url)
    try:
        await _execute(postgres_url, "ALTER TABLE signal_mitigations RENAME TO signal_mitigations_away")
        refused = await service.answer(_put(1, "192.0.2.0/28"))
        await _execute(postgres_url, "ALTER TABLE signal_mitigations_away RENAME TO signal_mitigations")
        assert refused.code == "5.03"
        assert service.core.mitigations() == [] and (await store.dump())["signal_mitigations"] == []
        assert (await service.answer(_put(1, "192.0.2.0/28"))).code == "2.01"  # free to decide again
    finally:
        await store.close()


def test_db_upgrade_migrates_postgresql_and_the_data_channel_sqlite_file(tmp_path, postgres_url: str):
    from opendots.pki.setup import init_pki
    from tests.helpers.cli import EX_CONFIG, invoke, one_line_error

    init_pki(tmp_path)
    config = str(tmp_path / "server.toml")
    result = invoke("db", "upgrade", "-c", config, "--db", postgres_url)
    assert result.exit_code == 0, result.output
    # both components in PostgreSQL, and the data channel SQLite file of [server] data_db
    assert (
        f"signal {len(_MIGRATIONS)}, data_channel {len(POSTGRES_DATA_MIGRATIONS)}" in result.output
    )  # both in PostgreSQL
    assert f"opendots.db: data_channel {len(DATA_MIGRATIONS)}" in result.output
    assert "signal" not in result.output.splitlines()[-1]  # the signal tables are not in the SQLite file
    refused = invoke("db", "upgrade", "-c", config, "--db", "postgresql://dots:secret@127.0.0.1:1/dots")
    one_line_error(refused, EX_CONFIG, "postgresql://dots:***@127.0.0.1:1/dots")


async def test_after_the_database_drops_its_connections_requests_are_served_again(postgres_url: str):
    """A PostgreSQL restart or failover ends every connection: the pool replaces the connections it finds closed
    (a write on one the loss has not yet reached is refused, 5.03: RFC 9132 §4.4.1 answers only what is stored),
    and requests are stored and answered again, memory and database agreeing."""
    service, store = await _service(postgres_url)
    try:
        assert (await service.answer(_put(1, "192.0.2.0/28"))).code == "2.01"
        await _execute(
            postgres_url,
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        codes = [(await service.answer(_put(mid, f"192.0.2.{16 * mid}/28"))).code for mid in (2, 3)]
        assert set(codes) <= {"2.01", "5.03"} and codes[-1] == "2.01", codes
        stored = [row[1] for row in (await store.dump())["signal_mitigations"]]
        assert stored == [m.record.mid for m in service.core.mitigations()]
        assert stored == [1] + [mid for mid, code in zip((2, 3), codes, strict=True) if code == "2.01"]
    finally:
        await store.close()


async def test_settle_async_applies_nothing_before_postgresql_has_the_write(postgres_url: str):
    from opendots.signal.server.shell.durable import settle_async

    service, store = await _service(postgres_url)
    try:
        core = service.core
        pending = asyncio.ensure_future(settle_async(core, store, core.handle(_put(1, "192.0.2.0/28"), T0), T0))
        await asyncio.sleep(0)  # the task runs up to its awaited write
        assert core.mitigations() == []
        with pytest.raises(RuntimeError):  # and nothing new is decided meanwhile
            core.handle(_put(2, "192.0.2.16/28"), T0)
        response, _ = await pending
        assert response is not None and response.code == "2.01"
        assert [row[1] for row in (await store.dump())["signal_mitigations"]] == [1]
    finally:
        await store.close()


async def test_a_request_cancelled_while_postgresql_holds_its_write_still_settles_and_the_next_is_served(
    postgres_url: str,
):
    service, store = await _service(postgres_url)
    blocker = await asyncpg.connect(postgres_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE signal_mitigations IN ACCESS EXCLUSIVE MODE")  # the write waits on it
        first = asyncio.ensure_future(service.answer(_put(1, "192.0.2.0/28")))
        for _ in range(200):  # until the write is waiting on the lock in PostgreSQL
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = 'signal_mitigations'::regclass AND NOT granted"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        first.cancel()  # the peer went away while its write is in flight
        await asyncio.sleep(0)
        await transaction.rollback()  # the lock goes: the write completes
        assert (await service.answer(_put(2, "192.0.2.16/28"))).code == "2.01"
        assert [row[1] for row in (await store.dump())["signal_mitigations"]] == [1, 2]  # the first write finished
        assert sorted(m.record.mid for m in service.core.mitigations()) == [1, 2]  # and memory followed it
    finally:
        await blocker.close()
        await store.close()


async def test_a_write_postgresql_does_not_answer_in_time_is_5_03_and_the_server_goes_on(postgres_url: str):
    """Decisions are settled one at a time: a database that stops answering must not hold every request behind the
    waiting one. Past the store's timeout the write is refused (5.03) and the next request is decided."""
    store = await PostgresSignalStore.open(postgres_url, timeout=0.3)
    core = SignalServer(ServerSettings(clients=[ALPHA, BRAVO]), store.load(), T0)
    service = SignalService(core, store, LoggingMitigator(), clock=lambda: T0)
    blocker = await asyncpg.connect(postgres_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE signal_mitigations IN ACCESS EXCLUSIVE MODE")
        refused = await asyncio.wait_for(service.answer(_put(1, "192.0.2.0/28")), 10)
        assert refused.code == "5.03" and service.core.mitigations() == []
        await transaction.rollback()
        assert (await service.answer(_put(2, "192.0.2.16/28"))).code == "2.01"
        assert [row[1] for row in (await store.dump())["signal_mitigations"]] == [2]
    finally:
        await blocker.close()
        await store.close()
