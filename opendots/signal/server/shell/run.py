"""A complete DOTS signal-channel server: store, core, service, CoAP resources over DTLS and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiocoap

from opendots.audit import AuditLog
from opendots.config import ConfigError, ServerConfig
from opendots.data.core import DataChannelCore
from opendots.data.records import DataChannelQuery
from opendots.data.shell.settings import data_settings_from_table
from opendots.mitigate.base import Mitigator
from opendots.mitigate.router import MitigatorRouter, build_router
from opendots.model import DEFAULT_MAX_SIZE, encode_signal
from opendots.signal.server.core import (
    Event,
    HeartbeatDue,
    MitigationActivated,
    MitigationChanged,
    MitigationExpired,
    MitigationWithdrawn,
    PeerBack,
    PeerLost,
    ServerSettings,
    SessionConfigChanged,
    SignalServer,
)
from opendots.signal.server.core.events import TelemetryChanged, TelemetrySetupChanged
from opendots.signal.server.core.messages import HEARTBEAT
from opendots.signal.server.shell.acls import AclEnforcer, DataChannelAclControl
from opendots.signal.server.shell.aliases import DataChannelAliases
from opendots.signal.server.shell.checkpoints import checkpoint_in_background
from opendots.signal.server.shell.collection import FullCollections, hand_back, take_over
from opendots.signal.server.shell.data_reads import DataReads
from opendots.signal.server.shell.durable import AsyncSignalStore
from opendots.signal.server.shell.qblock_params import session_parameters
from opendots.signal.server.shell.resources import DOTS_CBOR, WELL_KNOWN_DOTS, DotsResource, build_site
from opendots.signal.server.shell.service import SignalService
from opendots.signal.server.shell.settings import settings_from_table
from opendots.signal.server.shell.workers_sqlite import WorkerSync
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.records import StoreError
from opendots.store.signal import SignalStore, SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from opendots.transport import SessionEvent, SignalServerEndpoint, start_server
from opendots.transport.aiocoap_hooks import SingleResponse, send_single_request
from opendots.transport.qblock import QBlockLimits

if TYPE_CHECKING:
    from opendots.signal.server.shell.cluster import ClusterNode

log = logging.getLogger(__name__)


@dataclass
class RunningSignalServer:
    service: SignalService
    resource: DotsResource
    endpoint: SignalServerEndpoint
    store: SignalStore | AsyncSignalStore
    acls: AclEnforcer | None = None
    """Enforces the data channel's ACLs (None when the server runs without a data-channel store)."""
    config: ServerConfig | None = None
    certificate_cuid: dict[str, str] = field(default_factory=dict)
    """Client name -> the CUID of its certificate (where its data-channel ACLs live)."""
    database: SqliteDatabase | None = None
    """The SQLite database this server owns besides its store (the data channel's, when the store is PostgreSQL)."""
    full_collections: FullCollections | None = None
    cluster: ClusterNode | WorkerSync | None = None
    """This node's part among several on one PostgreSQL database (None: SQLite)."""
    """The timer that runs the full garbage collections (None: CPython's own policy)."""
    audit: AuditLog = field(default_factory=AuditLog)
    """Every state change, who made it, before and after ([audit] file; the dashboard's timeline)."""
    heartbeats_out: dict[str, SingleResponse] = field(default_factory=dict)
    """Per client, the heartbeat of ours still waiting for its answer (one at most: _send_heartbeat)."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def reload_clients(self, fresh: ServerConfig, who: str = "operator (SIGHUP)") -> dict[str, list[str]]:
        """Adopt FRESH's [[clients]] (names, CUIDs, what each may protect) without dropping a session: SIGHUP or
        `opendots admin reload`. Everything else in the file needs a restart. Returns the names added, removed
        and changed; raises ConfigError, changing nothing, if a [[mitigators]] entry names a removed client."""
        assert self.config is not None
        names = {client.name for client in fresh.clients}
        router = self.service.mitigator
        if isinstance(router, MitigatorRouter):
            orphaned = sorted({n for a in router.assignments for n in a.clients} - names)
            if orphaned:
                raise ConfigError(f"[[mitigators]] still name clients the new [[clients]] drop: {orphaned}")
        if len({client.cuid for client in fresh.clients}) != len(fresh.clients) or len(names) != len(fresh.clients):
            raise ConfigError("[[clients]] repeats a name or a cuid")
        before = {client.name: client for client in self.config.clients}
        after = {client.name: client for client in fresh.clients}
        self.service.core.set_clients(fresh.clients)
        aliases = self.service.core.settings.aliases
        if isinstance(aliases, DataChannelAliases):
            aliases.set_clients(fresh.clients)
        if isinstance(router, MitigatorRouter):
            router.client_names = {client.cuid: client.name for client in fresh.clients}
        self.config.clients = list(fresh.clients)  # shared with the data channel and the ACL enforcer
        self.certificate_cuid.clear()
        self.certificate_cuid.update({client.name: client.cuid for client in fresh.clients})
        changes = {
            "added": sorted(after.keys() - before.keys()),
            "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(name for name in after.keys() & before.keys() if after[name] != before[name]),
        }
        log.warning(
            "reloaded [[clients]]: added %s; removed %s; changed %s",
            *(", ".join(changes[kind]) or "none" for kind in ("added", "removed", "changed")),
        )
        self.audit.record(who, "clients reloaded", "[[clients]]", sorted(before), sorted(after), changes=changes)
        return changes

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.acls is not None:
            await self.acls.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.service.stop()
        await self.endpoint.shutdown()
        closing = self.store.close()
        if inspect.isawaitable(closing):  # a network database's pool (AsyncSignalStore)
            await closing
        if self.database is not None:
            self.database.close()
        hand_back(self.full_collections)
        self.full_collections = None
        self.audit.close()
        gc.unfreeze()  # what start froze may be garbage now (tests start many servers in one process)


async def start_signal_server(
    config: ServerConfig,
    *,
    bind: list[tuple[str, int]] | None = None,
    mitigator: Mitigator | None = None,
    settings: ServerSettings | None = None,
    store: SignalStore | AsyncSignalStore | None = None,
    clock: Callable[[], float] = time.time,
    dtls: bool = True,
    tls: bool = True,
    data_channel: DataChannelCore | None = None,
    database: SqliteDatabase | None = None,
    transport: Callable[[aiocoap.resource.Site], Awaitable[SignalServerEndpoint]] | None = None,
) -> RunningSignalServer:
    """Serve the signal channel on BIND (default: every `config.listen` address on `config.signal_port`).

    DATA_CHANNEL: the data channel's service when it runs in this process (its ACL changes are then enforced at
    once); by default one on the same database, so stored ACLs are enforced too. DATABASE: the database the data
    channel already uses (opendots.app opens one for both); by default `config.db` is opened. Either way the
    signal server owns it from here: it checkpoints it and closes it on stop. STORE: the signal channel's store;
    by default the PostgreSQL database `config.db_url` names (opened and awaited here), else the SQLite one.
    TRANSPORT: how the site is served; by default it listens on BIND. An RFC 9066 Call Home DOTS server dials out
    instead (opendots.callhome.cpe): anything with the endpoint's `context`, `session_listeners` and `shutdown`."""
    audit = AuditLog.open(config.audit_file, clock)  # a file it cannot write stops the start here
    opened = store is None and config.db_url is not None
    if opened:
        from opendots.app import open_signal_store

        store = await open_signal_store(config)
        # Started alone (not through opendots.app, which opens the data channel's PostgreSQL store), the data
        # channel's tables are in the SQLite file data_db.
        database = database or SqliteDatabase(config.db)
    owned = None  # the SQLite database to close on stop when the store does not
    reads: DataReads | None = None
    if store is None:
        database = database or SqliteDatabase(config.db)
        store = SqliteSignalStore(database)
    elif database is not None:
        owned = database
    if database is not None:
        if data_channel is None:
            data_channel = DataChannelCore(
                SqliteDataChannelStore(database),
                config.client_by_cuid,
                data_settings_from_table(config.clients, config.data),
            )
        if settings is None:
            # Aliases live in the data channel's tables of the same database file (RFC 9132 §4.4.1.3).
            reads = DataReads(data_channel.store)
            aliases = DataChannelAliases(reads, config.clients, clock)
            settings = replace(settings_from_table(config.clients, config.signal), aliases=aliases)
    settings = settings or settings_from_table(config.clients, config.signal)
    mitigator = mitigator or build_router(config)  # [[mitigators]] of server.toml; logging only when none
    acl_control = None
    if data_channel is not None and reads is None:
        reads = DataReads(data_channel.store)
    if data_channel is not None and settings.acl_control is None:
        acl_control = DataChannelAclControl(data_channel, reads=reads)
        settings = replace(settings, acl_control=acl_control)  # RFC 9133 'acl-list'
    # The core reads the data channel's ACLs; the shell stores the activation changes its decisions carry.
    acl_store = settings.acl_control if isinstance(settings.acl_control, DataChannelAclControl) else None
    core = SignalServer(settings, store.load(), clock())
    service = SignalService(
        core, store, mitigator, acl_store=acl_store, clock=clock, counters_interval=settings.counters_interval
    )
    service.data_reads = reads  # a remote data store is read off the loop before each decision needing it
    cluster: ClusterNode | WorkerSync | None = await _join_cluster(config, store, service)
    if cluster is None and config.worker is not None and isinstance(store, SqliteSignalStore):
        cluster = _join_workers(config, store, service)
    if cluster is not None and core.settings.renewal_slack:
        # The other nodes or workers hold what the database holds: a renewal written behind would leave them a
        # stale expiry, and the next decision here would read it back. Every renewal is written.
        core.settings = replace(core.settings, renewal_slack=0.0)
    site, resource = build_site(service)
    bind = bind or [(host, config.signal_port) for host in config.listen]
    try:
        endpoint = await (transport(site) if transport is not None else _listen(config, site, bind, dtls, tls, core))
    except BaseException:
        if cluster is not None:
            await cluster.stop()
        if opened:  # ours: its pool goes with the failed start (an address in use, ...)
            await store.close()  # type: ignore[misc]
        raise
    running = RunningSignalServer(service, resource, endpoint, store, config=config, database=owned, audit=audit)
    running.cluster = cluster
    audit.statuses.update({m.mitigator_key: m.status.label for m in core.mitigations()})  # held across a restart
    if data_channel is not None:
        running.acls = _acl_enforcer(config, core, mitigator, data_channel, clock)
        if acl_control is not None:
            acl_control.enforcer = running.acls  # RFC 9133: an ACL our mitigators cannot enforce gets 5.03
            data_channel.subscribe(service.acl_activation_changed)

    running.certificate_cuid.update({client.name: client.cuid for client in config.clients})

    def config_text(name: str) -> str:
        """RFC 9132 §4.5: the sid and heartbeat values in force, as the audit log shows them."""
        config = core.session_config(name)
        idle, mitigating = config.idle, config.mitigating
        sid = f"sid {config.sid}" if config.sid is not None else "server defaults"
        return f"{sid}: heartbeat {idle.heartbeat_interval} s idle, {mitigating.heartbeat_interval} s mitigating"

    for client in config.clients:  # what is in force now, so a change says what it was before
        audit.values[("session configuration", f"client {client.name}")] = config_text(client.name)
    if data_channel is not None:
        entries = data_channel.store

        def data_changed(cuid: str) -> None:  # RFC 8783: aliases and ACLs of CUID were created, changed or deleted
            client = config.client_by_cuid(cuid)
            who = f"client {client.name}" if client is not None else f"cuid {cuid}"
            audit.value_changed(who, "data channel entries held", cuid, entries.count_entries(cuid, clock()))

        for client in config.clients:
            owner = client.cuid
            audit.values[("data channel entries held", owner)] = entries.count_entries(owner, clock())
        data_channel.subscribe(data_changed)

    def on_event(event: Event) -> None:
        resource.notify(event)
        if running.acls is not None and isinstance(
            event, MitigationActivated | MitigationWithdrawn | MitigationExpired
        ):
            # ACLs live under the data channel's cuid: the certificate's, which a request's Uri-Path may not use.
            owner = running.certificate_cuid.get(event.client, event.cuid)
            running.acls.mitigations_changed(event.client, {event.cuid, owner})
        if isinstance(event, HeartbeatDue):
            _send_heartbeat(running, event)
        elif isinstance(event, PeerLost):
            log.warning("DOTS client %s: signal channel session lost", event.client)
            audit.record("server", "session lost", f"client {event.client}", "alive", "lost", client=event.client)
        elif isinstance(event, PeerBack):
            audit.record("server", "session back", f"client {event.client}", "lost", "alive", client=event.client)
        elif isinstance(event, MitigationChanged) and event.status is not None:
            audit.status_changed(event.client, f"{event.cuid}/{event.mid}", event.status)
        elif isinstance(event, SessionConfigChanged):
            audit.value_changed(
                f"client {event.client}", "session configuration", f"client {event.client}", config_text(event.client)
            )
        elif isinstance(event, TelemetryChanged):
            held = len(core.telemetry_reports.of(event.client, event.cuid))
            audit.value_changed(f"client {event.client}", "telemetry reports held", event.cuid, held)
        elif isinstance(event, TelemetrySetupChanged):
            setups = [record.tsid for record in core.telemetry_setups.of(event.client, event.cuid)]
            audit.value_changed(f"client {event.client}", "telemetry setups held (tsids)", event.cuid, setups)

    def on_session(event: SessionEvent) -> None:
        if event.kind == "closed":
            resource.session_closed(event.remote)
        name = core.client_name(event.identity.cuid if event.identity else None)
        if name is None:
            return
        if event.kind == "established":
            resource.remotes[name] = event.remote
            service.note_traffic(name)
            if cluster is not None:
                cluster.announce_session(name)
        elif resource.remotes.get(name) is event.remote:
            del resource.remotes[name]

    service.on_event = on_event  # it needs the resource and `running`, which need the service first
    service.observed = lambda client_name: bool(resource.observer_count(client_name))
    endpoint.session_listeners.append(on_session)
    if isinstance(cluster, WorkerSync):
        if data_channel is not None:
            data_channel.subscribe(cluster.data_changed)
        cluster.start()
    await service.start()
    if running.acls is not None:
        if cluster is None or service.drives_mitigator:
            await running.acls.start()  # after the mitigators restored their state, which replaces their tables
        else:  # only the lease holder drives the mitigators
            enforcer = running.acls

            async def enforce_acls() -> None:
                cluster.on_lease.remove(enforce_acls)  # once: a lease lost and taken again finds it running
                await enforcer.start()

            cluster.on_lease.append(enforce_acls)
    if cluster is not None and running.acls is not None:
        acls = running.acls
        acls.may_act = lambda: service.drives_mitigator  # no ACL change either once the lease is lost

        async def resume_acls() -> None:
            acls.restored()  # the mitigators' restore just dropped the ACLs they held

        cluster.on_lease.insert(0, resume_acls)  # before a first start, which applies them all anyway

        def data_changed(cuid: str) -> None:  # a commit on another node's data channel (or this one's: harmless)
            acls.client_changed(cuid)
            service.acl_activation_changed(cuid)

        cluster.on_data_change = data_changed
    if database is not None:  # ours: checkpoint its WAL off the request path
        checkpoints = asyncio.get_running_loop().create_task(checkpoint_in_background(database))
        running._tasks.add(checkpoints)
    # What is loaded by now (YANG schema, TLS contexts, settings) lives as long as the process. Out of the cyclic
    # collector's reach, it no longer makes each full collection a 10-30 ms pause in some request's latency.
    gc.collect()
    gc.freeze()
    running.full_collections = take_over(config.full_collection_interval)
    if running.full_collections is not None:
        running._tasks.add(asyncio.get_running_loop().create_task(running.full_collections.run()))
    return running


async def _join_cluster(config: ServerConfig, store: Any, service: SignalService) -> ClusterNode | None:
    """On PostgreSQL, this node is one of the nodes sharing the database (one alone is a cluster of one)."""
    if config.db_url is None:
        return None
    from opendots.signal.server.shell.cluster import ClusterNode
    from opendots.store.postgres import PostgresSignalStore, application_name

    if not isinstance(store, PostgresSignalStore):
        return None
    cluster = ClusterNode(store, service, config.db_url, node=application_name())
    try:
        await cluster.start()
    except StoreError as error:
        await cluster.stop()
        raise ConfigError(f"db: {error}") from None
    return cluster


def _join_workers(config: ServerConfig, store: SqliteSignalStore, service: SignalService) -> WorkerSync:
    """`opendots server --workers N`: this process is one of N on the same SQLite file."""
    assert config.worker is not None
    sync = WorkerSync(store, service, worker=config.worker, base=Path(config.db))
    sync.prepare()
    return sync


def _acl_enforcer(
    config: ServerConfig,
    core: SignalServer,
    mitigator: Mitigator,
    data_channel: DataChannelCore,
    clock: Callable[[], float],
) -> AclEnforcer:
    def mitigating(cuid: str) -> bool:
        client = config.client_by_cuid(cuid)
        if client is not None:  # called on every mitigation event: no scan of every client's mitigations
            return core.is_enforcing(client.name)
        return any(m.enforcing and m.record.cuid == cuid for m in core.mitigations())

    def known_cuids() -> list[str]:
        stored = data_channel.store.clients()
        return list(dict.fromkeys([*(c.cuid for c in config.clients), *(record.cuid for record in stored)]))

    enforcer = AclEnforcer(
        DataChannelQuery(data_channel.store, clock), mitigator, config.client_by_cuid, mitigating, known_cuids, clock
    )
    data_channel.subscribe(enforcer.client_changed)
    return enforcer


def _send_heartbeat(running: RunningSignalServer, event: HeartbeatDue) -> None:
    """A Non-confirmable PUT /hb to the client (§4.7); its answer counts as traffic.

    Over DTLS without aiocoap's request machinery (opendots.transport.aiocoap_hooks.SingleResponse: no task, no
    reference cycle left per heartbeat). A client has one heartbeat of ours outstanding at most: the next one, an
    interval later, gives the previous up, as the interval's timeout did (NON: no answer is a missed heartbeat)."""
    remote = running.resource.remotes.get(event.client)
    if remote is None:
        return
    message = aiocoap.Message(
        transport_tuning=aiocoap.Unreliable,  # Non-confirmable (§4.7)
        code=aiocoap.PUT,
        uri_path=(*WELL_KNOWN_DOTS, "hb"),
        content_format=DOTS_CBOR,
        payload=encode_signal({HEARTBEAT: {"peer-hb-status": event.peer_hb_status}}),
    )
    message.remote = remote
    outstanding = running.heartbeats_out
    previous = outstanding.pop(event.client, None)
    if previous is not None:
        previous.give_up()
    answered = functools.partial(_heartbeat_answered, running, event.client, message)
    single = send_single_request(remote, message, answered)
    if single is not None:
        outstanding[event.client] = single
        return
    task = asyncio.get_running_loop().create_task(_send_heartbeat_tls(running, event.client, message))
    running._tasks.add(task)
    task.add_done_callback(running._tasks.discard)


def _heartbeat_answered(
    running: RunningSignalServer, client: str, sent: aiocoap.Message, response: aiocoap.Message | None
) -> None:
    outstanding = running.heartbeats_out.get(client)
    if outstanding is not None and outstanding.request is sent:
        del running.heartbeats_out[client]
    if response is not None and response.code.is_successful():
        running.service.note_traffic(client)


async def _send_heartbeat_tls(running: RunningSignalServer, client: str, message: aiocoap.Message) -> None:
    """_send_heartbeat over TLS (RFC 8323): aiocoap's request, timed out after the client's interval."""
    interval = running.service.core.session_config(client).mitigating.heartbeat_interval or 30
    with contextlib.suppress(Exception):  # no answer is a missed heartbeat, nothing more
        response = await asyncio.wait_for(running.endpoint.context.request(message).response, interval)
        if response.code.is_successful():
            running.service.note_traffic(client)


async def _listen(
    config: ServerConfig,
    site: aiocoap.resource.Site,
    bind: list[tuple[str, int]],
    dtls: bool,
    tls: bool,
    core: SignalServer,
) -> SignalServerEndpoint:
    return await start_server(
        site,
        credentials=config.tls,
        bind=bind,
        dtls=dtls,
        tls=tls,
        max_sessions=config.max_sessions,
        idle_timeout=config.idle_session_timeout,
        max_handshakes=config.max_handshakes or None,
        max_handshakes_per_address=config.max_handshakes_per_address,
        handshake_timeout=config.handshake_timeout,
        qblock=QBlockLimits(max_body=DEFAULT_MAX_SIZE),  # RFC 9177 over DTLS, the body limit Block1 has
        qblock_parameters=session_parameters(core),  # RFC 9362: each session's values in force
        reuse_port=config.worker is not None,
        lean=config.lean_coap,
    )
