"""The lock keys of a mitigation write's scope (opendots.store.postgres_scopes.lock_keys): two writes share a key
one of them takes exclusive whenever their targets overlap (RFC 9132 §4.4.1.3: one prefix contains the other) or
they have an owner in common ('mid' rules, §4.4.1), and not when they are different clients on disjoint targets in
different parts of the address tree. Checked over many random prefixes against ipaddress's own overlap."""

from __future__ import annotations

import ipaddress
import random

from opendots.store.postgres_scopes import GLOBAL, MAX_KEYS, WriteScope, lock_keys


def _conflict(first: WriteScope | None, second: WriteScope | None) -> bool:
    mine, theirs = dict(lock_keys(first)), dict(lock_keys(second))
    return any(mine[key] or theirs[key] for key in mine.keys() & theirs.keys())


def _random_prefix(rng: random.Random, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    bits = 32 if version == 4 else 128
    # Few distinct high bits, so that nested and equal prefixes come up often.
    address = rng.getrandbits(4) << (bits - 4) | rng.getrandbits(bits - 4) & rng.choice([0, 0xFFFF, (1 << bits) - 1])
    return ipaddress.ip_network((address, rng.randint(0, bits)), strict=False)


def test_writes_whose_prefixes_overlap_always_meet_on_a_key_one_takes_exclusive():
    rng = random.Random(9132)
    overlapping = 0
    for _ in range(4000):
        version = rng.choice([4, 6])
        p, q = _random_prefix(rng, version), _random_prefix(rng, version)
        a, b = WriteScope(("peer a",), (p,)), WriteScope(("peer b",), (q,))
        if p.overlaps(q):
            overlapping += 1
            assert _conflict(a, b), (p, q)
    assert overlapping > 200  # the draw did test nesting (365 of 4000 with this seed)


def test_different_clients_on_disjoint_prefixes_of_different_branches_take_no_common_exclusive_key():
    a = WriteScope(("peer a", "cuid a"), (ipaddress.ip_network("192.0.2.0/28"), ipaddress.ip_network("2001:db8::/64")))
    b = WriteScope(("peer b", "cuid b"), (ipaddress.ip_network("198.51.100.0/24"),))
    assert not _conflict(a, b)
    # Both hold the whole table's lock shared, so a write that needs the whole table waits for them.
    assert lock_keys(a)[0] == lock_keys(b)[0] == (GLOBAL, False)
    assert _conflict(a, None) and _conflict(None, b)


def test_one_client_is_serialised_with_itself_whatever_its_targets():
    a = WriteScope(("peer a", "cuid a"), (ipaddress.ip_network("192.0.2.0/28"),))
    b = WriteScope(("peer a", "cuid a"), (ipaddress.ip_network("198.51.100.0/24"),))
    gateway = WriteScope(("peer gw", "cuid a"), (ipaddress.ip_network("203.0.113.0/24"),))
    assert _conflict(a, b) and _conflict(a, gateway)


def test_keys_are_taken_in_one_order_and_a_scope_too_wide_takes_the_whole_table():
    scope = WriteScope(("peer a",), (ipaddress.ip_network("2001:db8::1/128"), ipaddress.ip_network("10.0.0.0/8")))
    keys = lock_keys(scope)
    assert keys[0] == (GLOBAL, False) and keys[1:] == sorted(keys[1:])
    assert len(keys) == 1 + 1 + 9 + 2  # global, owner, IPv6 /0../128 every 16 bits, IPv4 /0 and /8
    many = WriteScope(("peer a",), tuple(ipaddress.ip_network(f"10.{n}.0.0/16") for n in range(MAX_KEYS)))
    assert lock_keys(many) == [(GLOBAL, True)]
