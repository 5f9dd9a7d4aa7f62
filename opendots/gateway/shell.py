"""The gateway's asyncio shell: both legs of the back-to-back DOTS agent on one event loop.

Downstream it is our DOTS server (opendots.signal.server.shell.run.start_signal_server: mutual (D)TLS, the
[[clients]] it serves, /config and /hb handled by the server core: each leg its own session configuration and
heartbeats, RFC 9132 §4.5.1 and §4.7 say they are not relayed), with the mitigate resource and RFC 9244's tm-setup
and tm taken by the relay. Upstream it is our client agent (opendots.signal.client.shell.agent.ClientAgent:
Happy Eyeballs, heartbeats, session configuration, reconnection with back-off) whose session the relay sends on
(opendots.gateway.upstream).
The agent's control socket is the gateway's admin socket: `gateway` shows each downstream request beside its
upstream counterpart, the agent's own operations (`session`) still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import NON

from opendots import eventloop
from opendots.gateway.config import GatewayConfig
from opendots.gateway.data_client_domain import ClientDomainData
from opendots.gateway.data_relay import DataRelay
from opendots.gateway.late import late_withdrawal
from opendots.gateway.relay import DOTS_CBOR, Batch, Inbound, Outbound, RelayCore, RelaySettings, Reply
from opendots.gateway.upstream import (
    WELL_KNOWN_DOTS,
    UpstreamAgent,
    UpstreamRedirected,
    UpstreamUnavailable,
    message_parts,
)
from opendots.pki.cuid import cuid_from_certificate
from opendots.signal.client.shell.settings import AgentSettings
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.store.gateway_names import NameStore
from opendots.store.gateway_state import RelayStore
from opendots.transport import peer_identity, start_server
from opendots.transport.block1 import Complete
from opendots.transport.endpoints import SignalServerEndpoint

log = logging.getLogger(__name__)
RELAYED = ("mitigate", "tm-setup", "tm")  # RFC 9132's mitigations and RFC 9244's telemetry
REREGISTER_DELAY = 1.0  # seconds before a relayed observation is registered upstream again


def to_message(reply: Reply) -> aiocoap.Message:
    major, minor = reply.code.split(".")
    message = aiocoap.Message(code=Code((int(major) << 5) | int(minor)), payload=reply.payload)
    if reply.content_format is not None and reply.payload:
        message.opt.content_format = reply.content_format
    if reply.max_age is not None:
        message.opt.max_age = reply.max_age
    return message


def _relayed(path: tuple[str, ...]) -> bool:
    return len(path) > 2 and path[:2] == WELL_KNOWN_DOTS and path[2] in RELAYED


class GatewaySite(aiocoap.resource.Site):
    """The downstream root: /.well-known/dots/mitigate (and tm, tm-setup) to the relay, everything else to the
    DOTS server's own site."""

    def __init__(self, inner: Any, relay: RelayResource) -> None:
        super().__init__()
        self.inner = inner
        self.relay = relay

    def answer_now(self, pipe: Any) -> bool:
        if _relayed(tuple(pipe.request.opt.uri_path)):
            return False  # relayed requests wait for the upstream answer: aiocoap's task path
        answer_now = getattr(self.inner, "answer_now", None)
        return bool(answer_now is not None and answer_now(pipe))

    async def render_to_pipe(self, pipe: Any) -> None:
        if _relayed(tuple(pipe.request.opt.uri_path)):
            return await self.relay.render_to_pipe(pipe)
        return await self.inner.render_to_pipe(pipe)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False


class RelayResource:
    """Downstream requests of the relayed resources: authenticated, handed to the relay core, answered."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.observers = 0

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        gateway = self.gateway
        block1 = request.opt.block1
        if block1 is not None:
            # RFC 7959 §2.5: the body is reassembled here, with the DOTS server's limits (Q-Block1 bodies arrive whole
            # from the transport), and goes upstream whole: the upstream leg cuts it again as that server takes it.
            assert gateway.server is not None
            upload = gateway.server.resource.take_block(request)
            if not isinstance(upload, Complete):
                pipe.add_response(upload, is_last=True)
                return
            request.payload = upload.body
            request.opt.block1 = None
        elif request.opt.block2 is not None and request.opt.block2.block_number > 0:
            # A later block of an answer: each relayed answer is rendered anew, none is kept to be served in parts.
            refusal = Reply.error("4.02", "this DOTS gateway does not serve answers block by block")
            pipe.add_response(to_message(refusal), is_last=True)
            return
        inbound = gateway.inbound(request)
        if isinstance(inbound, Reply):
            reply = inbound
        else:
            step = gateway.core.request(inbound, gateway.clock())
            if isinstance(step, Outbound) and step.observe == 0:
                await self._observe(pipe, step)
                return
            if isinstance(step, Batch):
                reply = await gateway.forward_all(step)
            else:
                reply = step if isinstance(step, Reply) else await gateway.forward(step)
        message = to_message(reply)
        if block1 is not None:
            message.opt.block1 = block1  # RFC 7959 §2.3: the final response echoes the last block's option
        pipe.add_response(message, is_last=True)

    async def _observe(self, pipe: Any, sent: Outbound) -> None:
        """RFC 7641 through the gateway: the upstream registration's answers and notifications go to the downstream
        observer; when the upstream session is lost the observation is registered again once it is back, so the
        observer keeps being told (a re-established mitigation included). Ends when the observer leaves (aiocoap
        cancels this task) or a notification is an error (RFC 7641 §3.2: the last one)."""
        gateway = self.gateway
        number = 0
        self.observers += 1
        try:
            while True:
                try:
                    async for code, payload, content_format, max_age in gateway.upstream.observe(sent):
                        now = gateway.clock()
                        if number == 0:
                            reply = gateway.core.answered(sent, code, payload, content_format, max_age, now)
                        else:
                            notified = gateway.core.notification(sent, code, payload, content_format, max_age, now)
                            gateway.drain()
                            if notified is None:
                                continue
                            reply = notified
                        gateway.drain()
                        message = to_message(reply)
                        last = not message.code.is_successful()
                        if not last:
                            message.opt.observe = number
                        if number:
                            message.mtype = NON  # RFC 9132 §4.4.2.1: notifications are Non-confirmable
                        pipe.add_response(message, is_last=last)
                        number += 1
                        if last:
                            return
                except UpstreamUnavailable as error:
                    if number == 0 and not isinstance(error, UpstreamRedirected):
                        pipe.add_response(to_message(gateway.core.failed(sent, str(error))), is_last=True)
                        return
                await asyncio.sleep(REREGISTER_DELAY)  # not a busy loop if the upstream keeps failing at once
                await gateway.upstream_ready()
        finally:
            self.observers -= 1


class Gateway:
    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = RelayStore(config.state)
        upstream_cuid = cuid_from_certificate(config.upstream.tls.cert.read_bytes())
        settings = RelaySettings(
            kind=config.kind,
            identity=config.identity,
            upstream_cuid=upstream_cuid,
            hop_limit=config.hop_limit,
            rewrite_hop_limit=config.rewrite_hop_limit,
            insert_cdid=config.insert_cdid,
            retry_after=config.retry_after,
        )
        self.core = RelayCore(settings, self.store)
        self.upstream_cuid = upstream_cuid
        self.names: NameStore | None = None
        self._cuids: tuple[list[Any], int, dict[str, str]] | None = None
        if config.kind == "client-domain" and config.data_channel:
            # Its clients' aliases and ACLs are renamed apart upstream, on both channels (opendots.gateway.data_names).
            names = self.names = NameStore(self.store.database)
            self.core.data_names = lambda client: names.prefix(self._cuid_of(client))
        self.relay = RelayResource(self)
        if config.admin_socket is not None:
            config.upstream.control_socket = config.admin_socket
        self.upstream = UpstreamAgent(self, config.upstream, AgentSettings.from_config(config.upstream), clock=clock)
        # The relayed mitigations are the upstream session's: mitigating-config and §4.7's keep-the-session rule
        # apply while any is held, as for a client's own.
        self.upstream.core.relaying = lambda: bool(self.core.links)  # an ended one is forgotten at once
        self.server: RunningSignalServer | None = None
        self.data: DataRelay | None = None
        self.metrics: Any = None
        self._up = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.server = await start_signal_server(self.config.downstream, transport=self._listen, clock=self.clock)
        # A downstream client with relayed mitigations held is under attack: its leg uses mitigating-config too.
        self.server.service.core.relaying = self.core.holds
        await self.upstream.start()
        self._spawn(self._expiry())
        data = ""
        if self.config.data_channel:
            downstream = self.config.downstream
            self.data = DataRelay(
                self.config.kind, self.config.identity, downstream.client_by_cuid, self.config.upstream, downstream.tls
            )
            if self.names is not None:
                self.data.client_domain = ClientDomainData(self.data, self.names, self.upstream_cuid)
            await self.data.start(downstream.listen, downstream.data_port)
            data = f"; data channel relayed on HTTPS port {downstream.data_port}"
        if self.config.metrics:
            from opendots.gateway.metrics import GatewayCollector
            from opendots.metrics.endpoint import start_metrics_endpoint

            self.metrics = await start_metrics_endpoint([GatewayCollector(self)], self.config.metrics)
        endpoint = self.server.endpoint
        log.warning(
            "DOTS gateway %s (%s) listening on %s; upstream %s; admin socket %s%s",
            self.config.identity,
            self.config.kind,
            ", ".join(f"{h}:{p}" for h, p in [*endpoint.dtls_addresses, *endpoint.tls_addresses]),
            self.config.upstream.server_name,
            self.upstream.config.control_socket,
            data,
        )

    async def _listen(self, site: aiocoap.resource.Site) -> SignalServerEndpoint:
        downstream = self.config.downstream
        return await start_server(
            GatewaySite(site, self.relay),
            credentials=downstream.tls,
            bind=[(host, downstream.signal_port) for host in downstream.listen],
            max_sessions=downstream.max_sessions,
            idle_timeout=downstream.idle_session_timeout,
            max_handshakes=downstream.max_handshakes or None,
            max_handshakes_per_address=downstream.max_handshakes_per_address,
            handshake_timeout=downstream.handshake_timeout,
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.stop()
        if self.data is not None:
            await self.data.stop()
        await self.upstream.stop()
        if self.server is not None:
            await self.server.stop()
        self.store.close()

    async def run_forever(self) -> None:
        stop = eventloop.stop_on_signals()
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the relay ------------------------------------------------------------------------------------------------

    def _cuid_of(self, client: str) -> str:
        """The cuid of the downstream [[clients]] entry named CLIENT (the relay core knows clients by name); the
        index follows the list being replaced or grown, as ServerConfig.client_by_cuid's does."""
        clients = self.config.downstream.clients
        if self._cuids is None or self._cuids[0] is not clients or self._cuids[1] != len(clients):
            self._cuids = (clients, len(clients), {entry.name: entry.cuid for entry in reversed(clients)})
        return self._cuids[2][client]

    def _client_name(self, cuid: str) -> str | None:
        entry = self.config.downstream.client_by_cuid(cuid)
        return entry.name if entry is not None else None

    def inbound(self, request: aiocoap.Message) -> Inbound | Reply:
        """A downstream request as the relay core takes it; a Reply when it is refused before that (4.01, 4.15)."""
        assert self.server is not None
        identity = peer_identity(request)
        peer = identity.cuid if identity is not None else None
        client = self.server.service.core.client_name(peer)
        if client is None or peer is None:
            return Reply.error("4.01", "this DOTS client is not authorized to use this DOTS gateway")
        if request.payload and request.opt.content_format not in (None, DOTS_CBOR):
            return Reply.error("4.15", "the payload must be application/dots+cbor (271)")
        hop_limits = request.opt.get_option(aiocoap.OptionNumber.HOP_LIMIT)
        if_match = request.opt.if_match
        return Inbound(
            client=client,
            peer_cuid=peer,
            method=request.code.name,
            path=tuple(request.opt.uri_path)[2:],
            query=tuple(request.opt.uri_query),
            payload=request.payload or None,
            # RFC 8768 §3 / RFC 7252 §5.4.5: a repeated elective option counts once, the first occurrence.
            hop_limit=int(hop_limits[0].value) if hop_limits else None,
            observe=request.opt.observe,
            if_match_empty=bool(if_match) and all(tag == b"" for tag in if_match),
            authorization=self.config.downstream.client_by_cuid(peer),
            confirmable=request.mtype is not NON,  # CON, or no type at all (TLS: reliable)
        )

    async def forward(self, sent: Outbound) -> Reply:
        try:
            answer = await self.upstream.relay(sent)
        except UpstreamUnavailable as error:
            return self.core.failed(sent, str(error))
        code, payload, content_format, max_age = message_parts(answer)
        reply = self.core.answered(sent, code, payload, content_format, max_age, self.clock())
        self.drain()
        return reply

    def drain(self) -> None:
        """The upstream requests the relay core asked for while handling an answer."""
        while self.core.stale:
            self._spawn(self._withdraw_stale(self.core.stale.pop()))
        resend, self.core.resend = self.core.resend, []
        for sent in (sent for sent in resend if sent.resource == "mitigate"):
            self._spawn(self.forward(sent))
        if setups := [sent for sent in resend if sent.resource != "mitigate"]:  # in order: tsids increase (RFC 9244)
            self._spawn(self._forward_in_order(setups))

    async def _forward_in_order(self, steps: list[Outbound]) -> None:
        for sent in steps:
            await self.forward(sent)

    def late_answer(self, sent: Outbound, answer: asyncio.Future[aiocoap.Message]) -> None:
        if answer.cancelled() or answer.exception() is not None:
            return
        withdrawal = late_withdrawal(self.core, sent, answer.result().code.dotted)
        if withdrawal is not None:
            log.warning("%s /%s was accepted upstream after its client was answered 5.03: withdrawn upstream",
                        sent.method, "/".join(sent.path))  # fmt: skip
            self._spawn(self.forward(withdrawal))

    async def forward_all(self, batch: Batch) -> Reply:
        """Each of BATCH's requests in turn: 2.02 when each was deleted (or already gone), else the first failure."""
        failure = None
        for sent in batch.steps:
            reply = await self.forward(sent)
            if failure is None and reply.code not in ("2.02", "4.04"):
                failure = reply
        return failure or Reply("2.02")

    async def _withdraw_stale(self, sent: Outbound) -> None:
        """A PUT accepted upstream after its client withdrew the mitigation: withdrawn upstream as well."""
        reply = await self.forward(sent)
        log.warning("mitigation mid=%d of cuid=%s was accepted upstream after %s withdrew it: withdrawn upstream "
                    "again (%s %s)", sent.mid, sent.cuid, sent.client, reply.code, reply.diagnostic)  # fmt: skip

    def upstream_changed(self, up: bool) -> None:
        was = self.core.upstream_up
        self.core.upstream_changed(up)
        if up and not was:
            self._spawn(self._reestablish())
        elif not up and was:
            self._up.clear()
            log.warning("upstream session down: downstream requests get 5.03 until it is back")

    async def upstream_ready(self) -> None:
        await self._up.wait()

    async def _reestablish(self) -> None:
        """The upstream session is (back) up: every accepted mitigation is PUT again (the upstream server may have
        restarted, or lost the session's mitigations, RFC 9132 §4.7)."""
        for sent in self.core.reestablish(self.clock()):
            if not self.core.current(sent):  # withdrawn while the ones before it were re-established
                self.core.dropped(sent)
                continue
            reply = await self.forward(sent)
            if reply.code.startswith("2."):
                log.info("re-established upstream %s for %s", "/".join(sent.path), sent.client)
            else:
                log.warning("could not re-establish %s for %s: %s %s", "/".join(sent.path), sent.client,
                            reply.code, reply.diagnostic)  # fmt: skip
        # Relayed observations register again only now: a GET before its mitigation is back would find 4.04 upstream,
        # and the observer would take its mitigation for gone.
        if self.core.upstream_up:
            self._up.set()

    async def _expiry(self) -> None:
        while True:
            due = self.core.next_expiry()
            await asyncio.sleep(60.0 if due is None else min(60.0, max(0.5, due - self.clock())))
            self.core.expire(self.clock())

    def status(self) -> dict[str, Any]:
        """The admin socket's `gateway` view: each downstream mitigation beside its upstream counterpart."""
        return {
            "identity": self.config.identity,
            "kind": self.config.kind,
            "upstream": self.upstream.session_info(),
            "links": self.core.status(self.clock()),
            "observers": self.relay.observers,
            "counters": dict(self.core.counters),
            **({"data-channel": dict(self.data.counters)} if self.data is not None else {}),
            **({"data-names": self.names.listing(self._client_name)} if self.names is not None else {}),
        }


async def run_gateway(config: GatewayConfig) -> None:
    gateway = Gateway(config)
    with contextlib.suppress(asyncio.CancelledError):
        await gateway.run_forever()
