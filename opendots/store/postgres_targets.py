"""Target prefixes of the stored mitigations as PostgreSQL `cidr` values with a GiST index (inet_ops): which stored
mitigations a set of prefixes overlaps (`&&`) is an index search, not a pass over every row in Python.

A schema component of its own ("signal_targets", migrated after "signal", by `opendots db upgrade` too): its table
is kept by a trigger on signal_mitigations, so every writer (any node, any code path) keeps it true without a round
trip of its own, and the migration fills it from the rows already stored. What counts as a mitigation's prefixes,
and the answer, are those of opendots.store.targets (the SQLite store gives the same): candidates for the core,
which decides on each exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from opendots.domain import IPNetwork

COMPONENT = "signal_targets"

# Never edit one that has shipped; add the next.
MIGRATIONS: list[str] = [
    # 1: one row per (mitigation, prefix). A request whose prefixes cannot be read (not a list of prefixes) stands
    # for every address, as opendots.store.targets.request_prefixes says: the search narrows, it never leaves out.
    """
    CREATE TABLE signal_mitigation_prefixes (
        cuid text NOT NULL,
        mid bigint NOT NULL,
        prefix cidr NOT NULL
    );
    CREATE INDEX signal_mitigation_prefixes_key ON signal_mitigation_prefixes (cuid, mid);
    CREATE INDEX signal_mitigation_prefixes_overlap ON signal_mitigation_prefixes USING gist (prefix inet_ops);
    CREATE FUNCTION signal_mitigation_prefixes_put(p_cuid text, p_mid bigint, request json) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        BEGIN
            INSERT INTO signal_mitigation_prefixes (cuid, mid, prefix)
                SELECT DISTINCT p_cuid, p_mid, network(value::inet)
                FROM json_array_elements_text(
                    CASE WHEN json_typeof(request) = 'object' AND request->'target-prefix' IS NOT NULL
                        THEN request->'target-prefix' ELSE '[]'::json END
                );
        EXCEPTION WHEN data_exception THEN  -- not an array, not strings, not prefixes
            INSERT INTO signal_mitigation_prefixes (cuid, mid, prefix)
                VALUES (p_cuid, p_mid, '0.0.0.0/0'), (p_cuid, p_mid, '::/0');
        END;
    END
    $$;
    CREATE FUNCTION signal_mitigation_prefixes_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM signal_mitigation_prefixes WHERE cuid = OLD.cuid AND mid = OLD.mid;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM signal_mitigation_prefixes_put(NEW.cuid, NEW.mid, NEW.request);
        END IF;
        RETURN NULL;
    END
    $$;
    -- A refresh rewrites only the lifetime and status columns: it does not fire this trigger.
    CREATE TRIGGER signal_mitigation_prefixes_sync AFTER INSERT OR DELETE OR UPDATE OF cuid, mid, request
        ON signal_mitigations FOR EACH ROW EXECUTE FUNCTION signal_mitigation_prefixes_sync();
    SELECT signal_mitigation_prefixes_put(cuid, mid, request) FROM signal_mitigations;
    """,
]

# The nested loop probes the GiST index once per query prefix (a GiST index cannot take `&& ANY(array)`).
OVERLAPPING = """
    SELECT DISTINCT p.cuid, p.mid
    FROM unnest($1::cidr[]) AS q(prefix) JOIN signal_mitigation_prefixes p ON p.prefix && q.prefix
    ORDER BY p.cuid, p.mid
"""


async def overlapping_keys(connection: asyncpg.Connection, prefixes: Sequence[IPNetwork]) -> list[tuple[str, int]]:
    """The (cuid, mid) of the stored mitigations naming a prefix that overlaps one of PREFIXES, sorted."""
    if not prefixes:
        return []
    rows = await connection.fetch(OVERLAPPING, list(prefixes))
    return [(row["cuid"], row["mid"]) for row in rows]
