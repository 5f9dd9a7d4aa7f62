"""What every data channel store must do, whatever its database: each function takes `store` (an open
DataChannelStore on an empty database) and is run by a thin test in tests/unit/store (SQLite) and in
tests/integration/store (PostgreSQL)."""

from __future__ import annotations

import pytest

from opendots.store.data_records import AclWrite, Changes, DataChannelStore


def acl(name: str, position: float, expires: float = 100.0, activation: str = "immediate") -> AclWrite:
    return AclWrite(name, {"name": name}, activation, expires, position)


def a_failure_half_way_leaves_the_store_unchanged(store: DataChannelStore) -> None:
    store.apply(Changes("c", register=(None,), acl_puts=[acl("a", 0.0), acl("b", 1.0)]), now=0.0)
    before = store.dump()
    broken = Changes("c", acl_deletes=["a"], acl_puts=[AclWrite("x", {"bad": object()}, "immediate", 100.0, 2.0)])
    with pytest.raises(TypeError):
        store.apply(broken, now=0.0)
    assert store.dump() == before


def order_activation_filter_and_expiry(store: DataChannelStore) -> None:
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
    assert store.acl_positions("c", now=1.0) == [("early", -1.0), ("short", 2.0), ("late", 5.0)]
    assert store.acl_position_bounds("c", now=1.0, exclude="late") == (-1.0, 2.0)
    assert store.acl_position_bounds("c", now=1.0, exclude="nothing-else") == (-1.0, 5.0)
    assert store.count_entries("c", now=1.0) == 4
    assert store.entry_names("acls", "c", now=1.0) == {"early", "short", "late"}
    assert [e.name for e in store.list_acls("c", now=10.0)] == ["early", "late"]
    assert store.get_alias("c", "w", now=9.0).body == {"name": "w"}
    assert store.get_alias("c", "w", now=10.0) is None
    assert store.purge_expired(now=10.0) == 2
    assert store.get_client("c").cdid == "domain-1"


def aliases_keep_the_order_they_were_first_written_in(store: DataChannelStore) -> None:
    store.apply(Changes("c", register=(None,), alias_puts=[(n, {"name": n}, 50.0) for n in ("z", "a", "m")]), 0.0)
    store.apply(Changes("c", alias_puts=[("a", {"name": "a", "x": 1}, 60.0)], alias_deletes=["m"]), 1.0)
    assert [(e.name, e.body) for e in store.list_aliases("c", now=2.0)] == [
        ("z", {"name": "z"}),
        ("a", {"name": "a", "x": 1}),
    ]
    assert store.entry_names("aliases", "c", now=2.0) == {"z", "a"}


def unregister_cascades(store: DataChannelStore) -> None:
    store.apply(Changes("c", register=(None,), acl_puts=[acl("a", 0.0)], alias_puts=[("w", {"name": "w"}, 9.0)]), 0.0)
    store.apply(Changes("other", register=(None,), acl_puts=[acl("a", 0.0)]), 0.0)
    store.apply(Changes("c", unregister=True), 0.0)
    assert store.get_client("c") is None
    assert "data_aliases" not in store.dump()
    assert [line.split()[0] for line in store.dump().splitlines()] == ["data_clients", "data_acls"]
    assert [c.cuid for c in store.clients()] == ["other"]


def a_domain_sees_its_other_clients_acls_only(store: DataChannelStore) -> None:
    """RFC 8783 §7.2: the conflict check of a client domain reads the ACLs of the domain's other clients."""
    store.apply(Changes("c1", register=("d",), acl_puts=[acl("one", 0.0)]), 0.0)
    store.apply(Changes("c2", register=("d",), acl_puts=[acl("two", 0.0)]), 0.0)
    store.apply(Changes("c3", register=("other",), acl_puts=[acl("three", 0.0)]), 0.0)
    assert [(cuid, entry.name) for cuid, entry in store.domain_acls("d", "c1", now=1.0)] == [("c2", "two")]


def activation_changes_apply_to_the_live_acl_only(store: DataChannelStore) -> None:
    """RFC 9133 §3.2.1: an activation type set through the signal channel is stored with the ACL."""
    store.apply(Changes("c", register=(None,), acl_puts=[acl("a", 0.0, activation="not-type"), acl("b", 1.0, 5.0)]), 0)
    assert store.set_acl_activation("c", "a", "immediate", None, now=1.0)
    entry = store.get_acl("c", "a", now=1.0)
    assert entry.activation_type == "immediate" and entry.body["activation-type"] == "immediate"
    assert entry.expires == 100.0
    assert not store.set_acl_activation("c", "b", "immediate", 200.0, now=6.0)  # expired
    assert not store.set_acl_activation("c", "missing", "immediate", None, now=1.0)
    store.touch_client("c", 7.0)
    assert store.get_client("c").last_seen == 7.0


CONTRACT = [
    a_failure_half_way_leaves_the_store_unchanged,
    order_activation_filter_and_expiry,
    aliases_keep_the_order_they_were_first_written_in,
    unregister_cascades,
    a_domain_sees_its_other_clients_acls_only,
    activation_changes_apply_to_the_live_acl_only,
]
