"""The lock keys of the address tree (opendots.store.postgres_scopes.lock_keys) are pinned: nodes of one cluster
compare them, and a faster derivation must give the same keys as before. A node's key is the 64-bit BLAKE2b of
"net " and the node's network as ipaddress writes it, the node being the prefix's network cut to every STEP bits
(RFC 9132 §4.4.1.3: overlapping prefixes meet on a key one of them takes exclusive)."""

from __future__ import annotations

import hashlib
import ipaddress
import random

import pytest

from opendots.store.postgres_scopes import STEP, WriteScope, lock_keys

PINNED = {  # the keys lock_keys gave before it stopped building an ip_network per level
    "0.0.0.0/0": [(-2319600556060718738, True)],
    "192.0.2.0/24": [
        (-2957118146667855675, False),
        (-2319600556060718738, False),
        (-275439774121787826, False),
        (8620762140327873993, True),
    ],
    "192.0.2.17/32": [
        (-6258328754316416268, True),
        (-2957118146667855675, False),
        (-2319600556060718738, False),
        (-275439774121787826, False),
        (8620762140327873993, False),
    ],
    "10.0.0.0/7": [(-2319600556060718738, True)],
    "::/0": [(-2227526934938475234, True)],
    "2001:db8::/32": [(-3953791268788155587, True), (-2227526934938475234, False), (878634098844367675, False)],
    "2001:db8:6401::1/128": [
        (-3953791268788155587, False),
        (-3582775910062662085, False),
        (-2573747936344063864, False),
        (-2227526934938475234, False),
        (878634098844367675, False),
        (1200538987686905753, False),
        (2190382309895404243, True),
        (7209894201736634233, False),
        (8132810552101458874, False),
    ],
    "2001:db8:0:2::/63": [
        (-3953791268788155587, False),
        (-2227526934938475234, False),
        (-2095596067518632560, True),
        (878634098844367675, False),
    ],
}


def keys_of(prefix: str) -> list[tuple[int, bool]]:
    return lock_keys(WriteScope((), (ipaddress.ip_network(prefix),)))[1:]  # after the whole table's, shared


def by_definition(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[tuple[int, bool]]:
    """The keys as first defined: an ip_network per level of the tree, its text hashed."""
    step = STEP[network.version]
    top = network.prefixlen // step * step
    wanted: dict[int, bool] = {}
    for level in range(0, top + 1, step):
        node = ipaddress.ip_network((network.network_address, level), strict=False)
        digest = hashlib.blake2b(f"net {node}".encode(), digest_size=8).digest()
        wanted[int.from_bytes(digest, "big", signed=True)] = level == top
    return sorted(wanted.items())


@pytest.mark.parametrize("prefix", PINNED)
def test_the_keys_of_a_prefix_are_the_ones_pinned(prefix):
    assert keys_of(prefix) == PINNED[prefix]
    assert keys_of(prefix) == PINNED[prefix]  # again, from the cache


def test_the_keys_of_random_prefixes_are_those_of_the_definition_host_routes_and_zero_length_included():
    rng = random.Random(8783)
    seen = 0
    for _ in range(3000):
        version = rng.choice([4, 6])
        bits = 32 if version == 4 else 128
        length = rng.choice([0, bits, rng.randint(0, bits)])
        network = ipaddress.ip_network((rng.getrandbits(bits), length), strict=False)
        assert lock_keys(WriteScope((), (network,)))[1:] == by_definition(network), network
        seen += length in (0, bits)
    assert seen > 1000  # /0 and host routes were drawn


def _conflict(p: str, q: str) -> bool:
    mine, theirs = dict(keys_of(p)), dict(keys_of(q))
    return any(mine[key] or theirs[key] for key in mine.keys() & theirs.keys())


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("192.0.2.0/24", "192.0.2.17/32"),
        ("0.0.0.0/0", "192.0.2.17/32"),
        ("10.0.0.0/7", "11.1.0.0/16"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("2001:db8::/32", "2001:db8:6401::1/128"),
        ("::/0", "2001:db8:0:2::/63"),
        ("2001:db8:0:2::/63", "2001:db8:0:3::/64"),
    ],
)
def test_nested_prefixes_meet_on_a_key_one_takes_exclusive_rfc9132_s4_4_1_3(outer, inner):
    assert _conflict(outer, inner) and _conflict(inner, outer)


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ("192.0.2.0/24", "198.51.100.0/24"),
        ("192.0.2.17/32", "192.0.3.17/32"),
        ("2001:db8::/32", "2001:db9::/32"),
        ("2001:db8:6401::1/128", "2001:db8:6402::1/128"),
        ("0.0.0.0/0", "::/0"),
    ],
)
def test_disjoint_prefixes_of_different_branches_take_no_common_exclusive_key(p, q):
    assert not _conflict(p, q)
