"""A client-domain gateway's name prefixes and registrations are durable, and a collision gets another prefix."""

from __future__ import annotations

from pathlib import Path

from opendots.gateway.data_names import derive_prefix
from opendots.store.gateway_names import NameStore
from opendots.store.sqlite import SqliteDatabase


def test_prefixes_and_registrations_survive_a_reopen_and_a_taken_prefix_is_not_given_twice(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "gw.db")
    store = NameStore(database)
    alice = store.prefix("alice")
    assert alice == derive_prefix("alice") and store.prefix("alice") == alice
    # Another client whose first derivation is taken (as if its hash collided): the next one.
    database.connection.execute("UPDATE gateway_data_clients SET prefix = ? WHERE cuid = 'alice'",
                                (derive_prefix("bob"),))  # fmt: skip
    database.connection.commit()
    reopened = NameStore(database)
    assert reopened.prefix("bob") == derive_prefix("bob", 1)
    reopened.set_registered("bob", True)
    database.close()
    again = NameStore(SqliteDatabase(tmp_path / "gw.db"))
    assert again.prefix("alice") == derive_prefix("bob") and again.prefix("bob") == derive_prefix("bob", 1)
    assert again.registered("bob") and not again.registered("alice") and again.registered_count() == 1
    again.set_registered("bob", False)
    assert again.registered_count() == 0


def test_the_listing_for_the_gateway_status_shows_each_clients_prefix_and_registration(tmp_path: Path) -> None:
    store = NameStore(SqliteDatabase(tmp_path / "gw.db"))
    store.set_registered("bob", True)
    store.prefix("alice")
    names = {"alice": "Alice"}
    assert store.listing(names.get) == [
        {"client": "Alice", "cuid": "alice", "prefix": derive_prefix("alice"), "registered": False},
        {"client": None, "cuid": "bob", "prefix": derive_prefix("bob"), "registered": True},
    ]
