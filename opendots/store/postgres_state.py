"""What a client installed besides its mitigations, shared by several nodes on one PostgreSQL database: its session
configuration (RFC 9132 §4.5) and its telemetry setups (RFC 9244 §7).

Every write to `signal_session_configs` or `signal_telemetry_setups` NOTIFYs `opendots_client_state` with the
writer's application_name and the client's name (a trigger of this component's migration, whichever node writes,
delivered at commit). A node hearing another's notification reads that client's rows and feeds them to its core
(`SignalServer.client_state_elsewhere`); a node that lost its listener reads every client's. A client's state is a
handful of rows, read whole: no change log is needed to know what changed.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import asyncpg

from opendots.store.postgres import PostgresSignalStore
from opendots.store.records import SessionConfigRecord, StoreError, TelemetrySetupRecord

COMPONENT = "signal_client_state"
CHANNEL = "opendots_client_state"

MIGRATIONS: list[str] = [
    """
    CREATE FUNCTION signal_client_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        owner text;
    BEGIN
        IF TG_OP = 'DELETE' THEN owner := OLD.client; ELSE owner := NEW.client; END IF;
        PERFORM pg_notify('opendots_client_state', json_build_array(current_setting('application_name'), owner)::text);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER signal_session_configs_changed AFTER INSERT OR UPDATE OR DELETE ON signal_session_configs
        FOR EACH ROW EXECUTE FUNCTION signal_client_state_changed();
    CREATE TRIGGER signal_telemetry_setups_changed AFTER INSERT OR UPDATE OR DELETE ON signal_telemetry_setups
        FOR EACH ROW EXECUTE FUNCTION signal_client_state_changed();
    """,
    # Two nodes decide a client's PUT /config on what each holds, unordered by any lock: a reconnect may land on
    # another node while an earlier PUT is still in flight there, and commit after the later one. RFC 9132 §4.5.2
    # makes the client's 'sid' increase, so the higher sid wins whatever the commit order: an update to a lower
    # one is dropped, and every node (its writer too, hence no writer's name) is told to read the row again.
    """
    CREATE FUNCTION signal_session_config_keeps_newest() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (NEW.config->>'sid')::bigint < (OLD.config->>'sid')::bigint THEN
            PERFORM pg_notify('opendots_client_state', json_build_array('', NEW.client)::text);
            RETURN NULL;
        END IF;
        RETURN NEW;
    END
    $$;
    CREATE TRIGGER signal_session_configs_newest BEFORE UPDATE ON signal_session_configs
        FOR EACH ROW EXECUTE FUNCTION signal_session_config_keeps_newest();
    """,
]

ClientState = tuple[SessionConfigRecord | None, list[TelemetrySetupRecord]]


def changed_by(payload: str) -> tuple[str, str] | None:
    """(writer, client) of a notification; None for anything else."""
    try:
        writer, client = json.loads(payload)
    except (ValueError, TypeError):
        return None
    return (writer, client) if isinstance(writer, str) and isinstance(client, str) else None


async def read_clients(store: PostgresSignalStore, clients: Collection[str] | None) -> dict[str, ClientState]:
    """What CLIENTS (None: every client with anything stored) hold now, in one snapshot; a client without rows maps
    to (None, [])."""
    wanted: Any = list(clients) if clients is not None else None
    where = "" if wanted is None else " WHERE client = ANY($1::text[])"
    args = () if wanted is None else (wanted,)
    try:
        async with (
            store.pool.acquire(timeout=store.timeout) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            configs = await connection.fetch(f"SELECT client, config FROM signal_session_configs{where}", *args)
            setups = await connection.fetch(
                f"SELECT cuid, tsid, client, setup FROM signal_telemetry_setups{where} ORDER BY cuid, tsid", *args
            )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
        raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem
    found: dict[str, ClientState] = {client: (None, []) for client in wanted or ()}
    for row in configs:
        found[row["client"]] = (SessionConfigRecord(row["client"], json.loads(row["config"])), [])
    for row in setups:
        held = found.setdefault(row["client"], (None, []))[1]
        held.append(TelemetrySetupRecord(row["client"], row["cuid"], row["tsid"], json.loads(row["setup"])))
    return found
