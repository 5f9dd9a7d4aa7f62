"""The data channel store on real SQLite: atomic changes, ordering, expiry, migrations."""

from __future__ import annotations

import pytest

from opendots.store.data_channel import AclWrite, Changes, SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase


@pytest.fixture
def store(tmp_path):
    database = SqliteDatabase(tmp_path / "store.sqlite")
    yield SqliteDataChannelStore(database)
    database.close()


def acl(name: str, position: float, expires: float = 100.0, activation: str = "immediate") -> AclWrite:
    return AclWrite(name, {"name": name}, activation, expires, position)


def test_a_failure_half_way_leaves_the_store_unchanged(store):
    store.apply(Changes("c", register=(None,), acl_puts=[acl("a", 0.0), acl("b", 1.0)]), now=0.0)
    before = store.dump()
    broken = Changes("c", acl_deletes=["a"], acl_puts=[AclWrite("x", {"bad": object()}, "immediate", 100.0, 2.0)])
    with pytest.raises(TypeError):
        store.apply(broken, now=0.0)
    assert store.dump() == before


def test_order_activation_filter_and_expiry(store):
    store.apply(
        Changes(
            "c",
            register=("domain-1",),
            acl_puts=[acl("late", 5.0), acl("early", -1.0, activation="deactivate"), acl("short", 2.0, expires=10.0)],
            alias_puts=[("w", {"name": "w"}, 10.0)],
        ),
        now=0.0,
    )
    assert [e.name for e in store.list_acls("c", now=1.0)] == ["early", "short", "late"]
    assert [e.name for e in store.list_acls("c", now=1.0, activation_type="deactivate")] == ["early"]
    assert store.count_entries("c", now=1.0) == 4
    assert [e.name for e in store.list_acls("c", now=10.0)] == ["early", "late"]
    assert store.get_alias("c", "w", now=10.0) is None
    assert store.purge_expired(now=10.0) == 2
    assert store.get_client("c").cdid == "domain-1"


def test_unregister_cascades(store):
    store.apply(Changes("c", register=(None,), acl_puts=[acl("a", 0.0)], alias_puts=[("w", {"name": "w"}, 9.0)]), 0.0)
    store.apply(Changes("other", register=(None,), acl_puts=[acl("a", 0.0)]), 0.0)
    store.apply(Changes("c", unregister=True), 0.0)
    assert store.get_client("c") is None
    assert "data_aliases" not in store.dump()
    assert [line.split()[0] for line in store.dump().splitlines()] == ["data_clients", "data_acls"]


def test_migrations_are_idempotent(tmp_path):
    database = SqliteDatabase(tmp_path / "twice.sqlite")
    SqliteDataChannelStore(database).apply(Changes("c", register=(None,)), 0.0)
    again = SqliteDataChannelStore(database)
    assert again.get_client("c") is not None
    database.close()
