"""The data channel's writes: the core returns them, the shell commits them before answering (off the event loop
for a large body), one write at a time, and a failed commit changes nothing; an ACL over `[data] max_aces` is
refused before any validation (RFC 8783 §10 quotas, RFC 8040 §7 error-tags)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from opendots.config import ConfigError
from opendots.data.core import DataChannelCore, DataChannelSettings, RestconfRequest
from opendots.data.core import body as body_module
from opendots.data.core.settings import DEFAULT_MAX_ACES
from opendots.data.shell.settings import data_settings_from_table
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, make_harness, register

harness = support.harness
MODULE = "ietf-dots-data-channel"


def aliases(count: int, prefix: str = "a") -> dict:
    return {
        f"{MODULE}:aliases": {
            "alias": [{"name": f"{prefix}{i}", "target-prefix": ["192.0.2.0/28"]} for i in range(count)]
        }
    }


def acl_with(aces: int) -> dict:
    entries = [
        {
            "name": f"r{i}",
            "matches": {"ipv4": {"destination-ipv4-network": f"192.0.2.{i % 256}/32"}},
            "actions": {"forwarding": "drop"},
        }
        for i in range(aces)
    ]
    return {f"{MODULE}:acls": {"acl": [{"name": "big", "aces": {"ace": entries}}]}}


def record_apply_threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(thread name, rows) of every commit of the data channel store."""
    calls: list[tuple[str, int]] = []
    original = SqliteDataChannelStore.apply

    def recording(self, changes, now):
        calls.append((threading.current_thread().name, changes.rows()))
        return original(self, changes, now)

    monkeypatch.setattr(SqliteDataChannelStore, "apply", recording)
    return calls


def count_validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches of entries yangson is asked to validate."""
    batches: list[int] = []
    original = body_module.canonical_entries

    def validate(list_name, items, *args, **kwargs):
        batches.append(len(items))
        return original(list_name, items, *args, **kwargs)

    monkeypatch.setattr(body_module, "canonical_entries", validate)
    return batches


def test_the_core_decides_a_write_without_writing_and_hands_back_its_change_set(tmp_path: Path, server_config):
    """The sans-I/O core returns the one transaction a request needs; the caller commits it (handle() does)."""
    database = SqliteDatabase(tmp_path / "core.sqlite")
    store = SqliteDataChannelStore(database)
    core = DataChannelCore(store, server_config.client_by_cuid)
    told: list[str] = []
    core.subscribe(told.append)
    cuid = server_config.clients[0].cuid
    register = RestconfRequest("POST", f"/{MODULE}:dots-data", cuid, body=b"", content_type=None)
    register.body = f'{{"{MODULE}:dots-client": [{{"cuid": "{cuid}"}}]}}'.encode()
    register.content_type = "application/yang-data+json"
    before = store.dump()
    response = core.decide(register, 1000.0)
    assert response.status == 201 and response.changes is not None and response.changes.register == (None,)
    assert store.dump() == before and told == []  # nothing stored, nobody told
    store.apply(response.changes, 1000.0)
    core.committed(response)
    assert store.get_client(cuid) is not None and told == [cuid]
    database.close()


async def test_a_large_post_is_decided_and_committed_off_the_event_loop(harness, monkeypatch):
    """Issue 13: 10,000 aliases kept ~60-90 ms of SQLite writing (and ~25 ms of deciding) on the loop; now the
    loop thread makes no commit of it, and the 201 comes after the rows are durable."""
    calls = record_apply_threads(monkeypatch)
    await register(harness.client)
    calls.clear()
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", aliases(2000))
    assert reply.status == 201, reply.text
    assert [rows for _, rows in calls] == [2000]
    assert all(name != threading.main_thread().name for name, _ in calls), calls
    assert harness.store.count_entries(harness.client.cuid, harness.clock.now) == 2000


async def test_a_small_write_is_still_committed_inline(harness, monkeypatch):
    calls = record_apply_threads(monkeypatch)
    await register(harness.client)
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", aliases(2))
    assert reply.status == 201, reply.text
    assert calls[-1] == (threading.main_thread().name, 2)


async def test_a_write_waits_for_the_one_being_committed_in_a_worker_so_the_quota_holds(
    pki_dir: Path, server_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """RFC 8783 §10 quotas under concurrency: a small POST arriving while a large one is being committed in a
    worker thread is decided on what that commit leaves, so exactly one of them is refused (without the write lock
    both were accepted: 402 entries against a limit of 401)."""
    original = SqliteDataChannelStore.apply
    committing = threading.Event()
    small_answered = threading.Event()

    def slow_large_commit(self, changes, now):
        if changes.rows() >= 400:
            committing.set()
            small_answered.wait(timeout=1.0)  # with the lock the small request cannot be answered meanwhile
        return original(self, changes, now)

    monkeypatch.setattr(SqliteDataChannelStore, "apply", slow_large_commit)
    h, close = await make_harness(pki_dir, server_config, tmp_path, DataChannelSettings(max_entries=401))
    try:
        await register(h.client)
        path = f"{ROOT}/dots-client={h.client.cuid}"
        large = asyncio.create_task(h.client.request("POST", path, aliases(400)))
        while not committing.is_set():
            await asyncio.sleep(0.01)
        small = await h.client.request("POST", path, aliases(2, prefix="s"))
        small_answered.set()
        statuses = sorted([small.status, (await large).status])
        assert statuses == [201, 409], statuses
        assert h.store.count_entries(h.client.cuid, h.clock.now) <= 401
    finally:
        small_answered.set()
        await close()


async def test_a_failed_commit_in_a_worker_answers_500_and_changes_nothing(harness):
    """Nothing is acknowledged before it is durable, and a failed write changes nothing: a real SQLite failure
    (a trigger aborting on the 1500th row) rolls the whole POST back; the next write still goes through."""
    await register(harness.client)
    connection = harness.store.database.connection
    connection.execute(
        "CREATE TRIGGER fail_alias BEFORE INSERT ON data_aliases WHEN NEW.name = 'a1499' "
        "BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
    )
    before = harness.store.dump()
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", aliases(2000))
    assert reply.status == 500, reply.text
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "operation-failed"
    assert harness.store.dump() == before
    connection.execute("DROP TRIGGER fail_alias")
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", aliases(3))
    assert reply.status == 201, reply.text


async def test_an_acl_over_max_aces_is_refused_before_any_entry_is_validated(
    pki_dir: Path, server_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A 30,000-ACE ACL took ~16 s of yangson in a worker; over the cap it is refused at once: 409
    resource-denied (the §10 quota family, like max_entries), naming the limit and its key."""
    validated = count_validated(monkeypatch)
    h, close = await make_harness(pki_dir, server_config, tmp_path, DataChannelSettings(max_aces=50))
    try:
        await register(h.client)
        before = h.store.dump()
        reply = await h.client.request("POST", f"{ROOT}/dots-client={h.client.cuid}", acl_with(51))
        assert reply.status == 409, reply.text
        error = reply.body["ietf-restconf:errors"]["error"][0]
        assert error["error-tag"] == "resource-denied"
        assert "51 ACEs" in error["error-message"] and "at most 50" in error["error-message"]
        assert "[data] max_aces" in error["error-message"]
        assert validated == [] and h.store.dump() == before
        reply = await h.client.request("POST", f"{ROOT}/dots-client={h.client.cuid}", acl_with(50))
        assert reply.status == 201, reply.text
    finally:
        await close()


async def test_an_ace_added_inside_an_acl_at_the_cap_is_refused(pki_dir: Path, server_config, tmp_path: Path):
    """The cap holds for edits below an ACL too (RFC 8040 §4.4.1 POST of one ACE), not only for whole ACLs."""
    h, close = await make_harness(pki_dir, server_config, tmp_path, DataChannelSettings(max_aces=3))
    try:
        await register(h.client)
        path = f"{ROOT}/dots-client={h.client.cuid}"
        assert (await h.client.request("POST", path, acl_with(3))).status == 201
        ace = {
            f"{MODULE}:ace": [
                {
                    "name": "r9",
                    "matches": {"ipv4": {"destination-ipv4-network": "198.51.100.0/24"}},
                    "actions": {"forwarding": "drop"},
                }
            ]
        }
        reply = await h.client.request("POST", f"{path}/acls/acl=big/aces", ace)
        assert reply.status == 409 and "max_aces" in reply.text, reply.text
    finally:
        await close()


def test_max_aces_is_a_data_key_with_a_default_and_must_be_positive(server_config):
    assert data_settings_from_table(server_config.clients, {}).max_aces == DEFAULT_MAX_ACES == 1000
    assert data_settings_from_table(server_config.clients, {"max_aces": 200}).max_aces == 200
    for bad in (0, -1, True, "100"):
        with pytest.raises(ConfigError, match="max_aces must be a positive integer"):
            data_settings_from_table(server_config.clients, {"max_aces": bad})


def test_the_data_channel_core_imports_no_database_module():
    """Issue 12: the sans-I/O core reads the store through an interface and returns its writes; it does not
    import sqlite3 (it did, through the SQLite store module)."""
    import subprocess
    import sys

    code = "import sys, opendots.data.core; print(sorted({'sqlite3', 'aiohttp', 'asyncio'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
