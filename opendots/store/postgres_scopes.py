"""Per-scope locks for mitigation writes when several nodes share one PostgreSQL database: two decisions wait for
each other only when one could change what the other decides, instead of one cluster-wide lock for every write.

What a mitigation write depends on (RFC 9132):
- its client's own mitigations: the 'mid' rules (§4.4.1: a lower 'mid' overlapping a held one is refused, a higher
  one replaces it), per (client, cuid), and the server's per-client limits. One exclusive lock per owner: the
  authenticated peer (a client has one certificate, so one peer identity) and the Uri-Path 'cuid' (a gateway's
  requests name other cuids);
- other clients' mitigations whose targets overlap (§4.4.1.3: a conflict). Two prefixes overlap exactly when one
  contains the other, so a lock per prefix must also meet the locks of every prefix nested in it or holding it:
  hierarchical (intention) locking on the address tree, cut every STEP bits. A prefix takes its level's node
  (its network cut to a multiple of STEP bits) exclusive and every node above it shared. Of two overlapping
  prefixes, the longer's path to the root passes through the shorter's node (shared or, at the same level,
  exclusive), which the shorter holds exclusive: they conflict. Disjoint prefixes meet only in shared nodes, or in
  an exclusive node both cut to (serialised without need: safe). Ports and protocols only narrow an overlap: a lock
  on the prefixes is a superset;
- anything else (an alias, whose prefixes live in the data channel; an FQDN or URI; a timer's expiries; a
  mitigator's report; a body that cannot be read; more locks than MAX_KEYS): the whole table. Every scoped write
  holds GLOBAL shared, these hold it exclusive: the cluster-wide lock as before.

Locks are session advisory locks taken in one order (GLOBAL first, then by key), so waits cannot form a cycle;
they are held while the node reads what changed, decides and stores, and released once the decision is stored.
Keys are 64-bit hashes: a collision only serialises two writes that did not need it.

Writes no longer commit one at a time, but a node reads the change log in `seq` order and must never see a later
entry before an earlier one commits: migration 1 makes every statement writing signal_mitigations take LOG_LOCK
(transaction-scoped) first, so log entries get their `seq` and commit in one order. It is held from the write to
its commit, never while waiting for a scope lock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import asyncpg

from opendots.domain import IPNetwork
from opendots.store.postgres import PostgresSignalStore, write_committed
from opendots.store.postgres_cluster import WRITE_LOCK, Changed, _changed
from opendots.store.records import SignalChanges, StoreError

COMPONENT = "signal_scopes"
GLOBAL = WRITE_LOCK  # the cluster-wide lock of opendots.store.postgres_cluster, now taken shared by scoped writes
LOG_LOCK = 0x0D0753
STEP = {4: 8, 6: 16}  # bits between two levels of the address tree: IPv4 at most 5 locks a prefix, IPv6 at most 9
MAX_KEYS = 64  # a scope needing more locks takes the whole table (the lock table is shared and bounded)

MIGRATIONS: list[str] = [
    f"""
    CREATE FUNCTION signal_mitigations_log_order() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({LOG_LOCK});
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER signal_mitigations_log_order BEFORE INSERT OR UPDATE OR DELETE ON signal_mitigations
        FOR EACH STATEMENT EXECUTE FUNCTION signal_mitigations_log_order();
    -- Wait for each lock in turn (exclusive or shared), then read, with a snapshot taken after the waits, every
    -- mitigation changed after entry AFTER, as opendots.store.postgres's signal_lock_and_read_changes does.
    CREATE FUNCTION signal_lock_scope_and_read_changes(after bigint, lock_keys bigint[], exclusive boolean[])
    RETURNS TABLE (
        changed_seq bigint, changed_cuid text, changed_mid bigint, cuid text, mid bigint, client text, cdid text,
        request json, lifetime bigint, status integer, started_at double precision, expires_at double precision,
        terminating_until double precision, attack_status integer
    ) LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        FOR i IN 1 .. coalesce(array_length(lock_keys, 1), 0) LOOP
            IF exclusive[i] THEN
                PERFORM pg_advisory_lock(lock_keys[i]);
            ELSE
                PERFORM pg_advisory_lock_shared(lock_keys[i]);
            END IF;
        END LOOP;
        RETURN QUERY
            WITH changed AS (
                SELECT max(c.seq) AS seq, c.cuid, c.mid FROM signal_mitigation_changes c WHERE c.seq > after
                GROUP BY c.cuid, c.mid
            )
            SELECT changed.seq, changed.cuid, changed.mid, m.cuid, m.mid, m.client, m.cdid, m.request, m.lifetime,
                m.status, m.started_at, m.expires_at, m.terminating_until, m.attack_status
            FROM changed LEFT JOIN signal_mitigations m ON m.cuid = changed.cuid AND m.mid = changed.mid
            ORDER BY changed.seq;
    END
    $$
    """,
]


@dataclass(frozen=True)
class WriteScope:
    """What a mitigation write may read or change: its OWNERS (peer and Uri-Path cuid) and the target PREFIXES of
    its request (literal prefixes only: anything else is the whole table, `None` where a scope is taken)."""

    owners: tuple[str, ...]
    prefixes: tuple[IPNetwork, ...] = ()


def _key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@functools.lru_cache(maxsize=4096)
def _node_key(version: int, network: int, level: int) -> int:
    """The key of the address tree's node NETWORK/LEVEL (an int with no bit set past LEVEL): the hash of
    "net " and the network as ipaddress writes it ("192.0.2.0/24", "2001:db8::/32"), as every version did.
    Cached: the nodes near the root are in nearly every write's path (0.1 ms a prefix when each level built an
    ip_network and hashed its text; an address object of an int and a cache hit cost far less)."""
    address = ipaddress.IPv4Address(network) if version == 4 else ipaddress.IPv6Address(network)
    return _key(f"net {address}/{level}")


def lock_keys(scope: WriteScope | None) -> list[tuple[int, bool]]:
    """(key, exclusive) in the order they are taken; the whole table for None or a scope needing too many."""
    if scope is None:
        return [(GLOBAL, True)]
    wanted: dict[int, bool] = {}
    for owner in scope.owners:
        wanted[_key(f"owner {owner}")] = True
    for prefix in scope.prefixes:
        version, bits = prefix.version, prefix.max_prefixlen
        step = STEP[version]
        top = prefix.prefixlen // step * step
        address = int(prefix.network_address)
        for level in range(0, top + 1, step):
            shift = bits - level
            key = _node_key(version, address >> shift << shift, level)  # the network of the address cut to LEVEL
            wanted[key] = wanted.get(key, False) or level == top
    if len(wanted) >= MAX_KEYS:
        return [(GLOBAL, True)]
    return [(GLOBAL, False), *sorted(wanted.items())]


@dataclass
class ScopedWrite:
    """A decision taken under its scope's locks: `changed` (what other nodes wrote since this node last looked) is
    fed to the core before it decides; `apply` stores the decision's changes and releases the locks. Without a call
    to `apply`, leaving the block stores nothing and releases them."""

    connection: asyncpg.Connection
    seen: int
    whole: bool
    """The whole table was locked: nothing else wrote meanwhile, so the log up to this write is all read."""
    changed: Changed = field(default_factory=list)
    committed: bool = False
    locked: bool = True

    async def apply(self, changes: SignalChanges) -> None:
        try:
            await write_committed(self.connection, changes)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
            raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem
        self.committed = True
        try:
            if self.whole:
                row = await self.connection.fetchrow(
                    "SELECT coalesce(max(seq), 0), pg_advisory_unlock_all() FROM signal_mitigation_changes"
                )
                self.seen = row[0]
            else:
                # Other scopes may have written since the read: their entries are read next time (this write's
                # own come back with them, and the core knows them already).
                await self.connection.execute("SELECT pg_advisory_unlock_all()")
            self.locked = False
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            pass  # the exit ends the session (which releases the locks)


async def _release(write_: ScopedWrite) -> None:
    """Release the locks, or end the session holding them: a session lock must never outlive the decision."""
    if write_.locked and not write_.connection.is_closed():
        try:
            await write_.connection.execute("SELECT pg_advisory_unlock_all()")
            write_.locked = False
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            pass
    if write_.locked:
        write_.connection.terminate()


@contextlib.asynccontextmanager
async def scoped(store: PostgresSignalStore, seen: int, scope: WriteScope | None) -> AsyncIterator[ScopedWrite]:
    """SCOPE's locks taken and what changed after SEEN read once they are held, in one round trip (StoreError when
    the database cannot be reached: nothing is decided then). Released on the way out, or their session ended."""
    keys = lock_keys(scope)
    try:
        connection = await store.pool.acquire(timeout=store.timeout)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
        raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem
    write_ = ScopedWrite(connection, seen, whole=keys == [(GLOBAL, True)])
    try:
        try:
            rows = await connection.fetch(
                "SELECT * FROM signal_lock_scope_and_read_changes($1, $2, $3)",
                seen,
                [key for key, _ in keys],
                [exclusive for _, exclusive in keys],
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
            raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem
        write_.changed = _changed(rows)
        write_.seen = max(seen, rows[-1]["changed_seq"]) if rows else seen
        yield write_
    finally:
        await _release(write_)
        await store.pool.release(connection)


def held_keys(keys: Iterable[tuple[int, bool]]) -> set[int]:
    """The advisory keys as pg_locks shows them (objid: the low 32 bits) — for operators and tests."""
    return {key & 0xFFFFFFFF for key, _ in keys}
