"""A schema component that is gone: target prefixes kept as PostgreSQL `cidr` with a GiST index (migration 1), for a
search of which stored mitigations a set of prefixes overlaps. Nothing used it: the core decides conflicts (RFC 9132
§4.4.1.3) and Uri-Query target filters on its own in-memory index, which every node holds for every mitigation and
brings up to date from the change log under the scope's locks before each write (opendots.store.postgres_scopes;
tests/integration/signal/server/shell/test_cluster_conflicts.py races it). Asking the database instead would add a
round trip to each decision and find nothing the index does not, while the trigger cost every mitigation write a
second table's rows. Migration 2 drops the table, its trigger and its functions; migration 1 stays as it shipped,
so every database reaches the same version.
"""

from __future__ import annotations

COMPONENT = "signal_targets"

# Never edit one that has shipped; add the next.
MIGRATIONS: list[str] = [
    # 1: one row per (mitigation, prefix). A request whose prefixes cannot be read (not a list of prefixes) stands
    # for every address: the search narrowed, it never left out.
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
    # 2: the search is not used (see above): the trigger, the functions and the table go.
    """
    DROP TRIGGER signal_mitigation_prefixes_sync ON signal_mitigations;
    DROP FUNCTION signal_mitigation_prefixes_sync();
    DROP FUNCTION signal_mitigation_prefixes_put(text, bigint, json);
    DROP TABLE signal_mitigation_prefixes;
    """,
]
