"""The Call Home DOTS client (RFC 9066), in the provider's network: it listens, and sends the requests.

It accepts (D)TLS on port 4647 (RFC 9066 §8.1) with mutual X.509 like a DOTS server (`start_server`), but only
CPEs it knows: a session whose certificate's CUID is not among `cpes` is closed at once. Over each CPE's session it
is the CoAP client: PUT, GET and DELETE of RFC 9132 §4.4 under its own CUID, with the RFC 9066 §5.3.1 source
members. It answers the CPE's heartbeats (the CPE's signal server sends them, RFC 9132 §4.7).

Before asking, it checks what RFC 9066 §5.3.1 makes its duty: every source-prefix lies within the prefixes
configured for that CPE (the CPE checks again and answers 4.00 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.resource

from opendots.callhome.redirect import redirect_body
from opendots.config import DEFAULT_CALL_HOME_PORT, TlsFiles
from opendots.domain import IPNetwork, Targets
from opendots.domain.ranges import IcmpTypeRange, PortRange
from opendots.model import decode_signal, encode_signal
from opendots.pki.cuid import cuid_from_certificate
from opendots.signal.client.core.scope import ACL_LIST, AclActivation
from opendots.transport import PeerIdentity, SessionEvent, SignalServerEndpoint, reset_session, start_server

log = logging.getLogger(__name__)

DOTS_CBOR = 271  # application/dots+cbor (RFC 9132 §10.4)
WELL_KNOWN_DOTS = (".well-known", "dots")
MITIGATION_SCOPE = "ietf-dots-signal-channel:mitigation-scope"


class CallHomeError(Exception):
    """A request the provider will not send (unknown CPE, no session, a source outside the CPE's prefixes)."""


@dataclass(frozen=True)
class CpePeer:
    """A CPE this provider accepts: its name, the CUID of its certificate, the prefixes it may be asked about."""

    name: str
    cuid: str
    prefixes: tuple[IPNetwork, ...] = ()

    def covers(self, prefix: IPNetwork) -> bool:
        return any(prefix.version == own.version and prefix.subnet_of(own) for own in self.prefixes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Answer:
    """A CPE's response: the CoAP code ("2.01"), the decoded body (YANG-JSON) or the diagnostic text."""

    code: str
    body: dict[str, Any] | None = None
    diagnostic: str | None = None


class _Heartbeat(aiocoap.resource.Resource):
    """PUT /hb from the CPE (RFC 9132 §4.7): answered 2.04 while the session is up, and counted."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.received += 1
        return aiocoap.Message(code=aiocoap.CHANGED)


@dataclass
class CallHomeClient:
    """A running Call Home DOTS client: `sessions` maps a CPE's name to its live session."""

    credentials: TlsFiles
    cpes: Sequence[CpePeer]
    endpoint: SignalServerEndpoint | None = None
    sessions: dict[str, Any] = field(default_factory=dict)
    session_details: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Per connected CPE: its transport ("tls"/"dtls") and when (time.time()) its session came up."""
    refused: list[PeerIdentity | None] = field(default_factory=list)
    """Identities of the sessions closed because no configured CPE has their certificate."""
    replaced: int = 0
    """Older sessions closed because their CPE dialed again (one session per CPE)."""
    cuid: str = ""
    """This client's own CUID (of its certificate): the Uri-Path 'cuid' of its requests."""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _heartbeat: _Heartbeat = field(default_factory=_Heartbeat)

    @property
    def heartbeats_received(self) -> int:
        """Heartbeats the CPEs sent over their sessions (their signal servers' RFC 9132 §4.7 PUT /hb)."""
        return self._heartbeat.received

    @classmethod
    async def start(
        cls,
        credentials: TlsFiles,
        cpes: Iterable[CpePeer],
        *,
        bind: list[tuple[str, int]] | None = None,
        dtls: bool = True,
        tls: bool = True,
    ) -> CallHomeClient:
        from cryptography import x509

        client = cls(credentials, list(cpes))
        client.cuid = cuid_from_certificate(x509.load_pem_x509_certificate(credentials.cert.read_bytes()))
        site = aiocoap.resource.Site()
        site.add_resource((*WELL_KNOWN_DOTS, "hb"), client._heartbeat)
        client.endpoint = await start_server(
            site, credentials=credentials, bind=bind or [("::", DEFAULT_CALL_HOME_PORT)], dtls=dtls, tls=tls
        )
        client.endpoint.session_listeners.append(client._on_session)
        return client

    def replace_peers(self, cpes: Iterable[CpePeer]) -> dict[str, list[str]]:
        """Take a new [[cpes]] list (SIGHUP or `reload`) without a restart: names added, removed, changed. A CPE
        removed, or whose certificate (CUID) changed, loses its session at once (it was authorised by the old entry);
        one whose prefixes alone changed keeps it, and its next request is checked against the new prefixes."""
        old = {peer.name: peer for peer in self.cpes}
        new = {peer.name: peer for peer in cpes}
        changes = {
            "added": sorted(new.keys() - old.keys()),
            "removed": sorted(old.keys() - new.keys()),
            "changed": sorted(name for name in old.keys() & new.keys() if old[name] != new[name]),
        }
        self.cpes = list(new.values())
        revoked = changes["removed"] + [name for name in changes["changed"] if old[name].cuid != new[name].cuid]
        for name in revoked:
            remote = self.sessions.pop(name, None)
            self.session_details.pop(name, None)
            if remote is not None:
                log.warning("call home: closing the session of CPE %s: no longer configured with its certificate", name)
                asyncio.get_running_loop().create_task(self._close(remote))
        return changes

    def _peer_named(self, cuid: str | None) -> CpePeer | None:
        return next((peer for peer in self.cpes if peer.cuid == cuid), None)

    def _on_session(self, event: SessionEvent) -> None:
        peer = self._peer_named(event.identity.cuid if event.identity is not None else None)
        if event.kind == "established":
            if peer is None:
                log.warning("call home: closing a session from an unknown CPE %s", event.identity)
                self.refused.append(event.identity)
                asyncio.get_running_loop().create_task(self._close(event.remote))
            else:
                log.warning("call home: CPE %s connected (%s)", peer.name, event.transport)
                older = self.sessions.get(peer.name)
                if older is not None and older is not event.remote:
                    # One session per CPE: the newest (a CPE that restarted may leave a DTLS session without a
                    # word; requests must go over the one it now listens on).
                    log.warning("call home: CPE %s dialed again: closing its older session", peer.name)
                    self.replaced += 1
                    asyncio.get_running_loop().create_task(self._close(older))
                self.sessions[peer.name] = event.remote
                self.session_details[peer.name] = (event.transport, time.time())
        elif peer is not None and self.sessions.get(peer.name) is event.remote:
            log.warning("call home: CPE %s disconnected (%s)", peer.name, event.reason)
            del self.sessions[peer.name]
            self.session_details.pop(peer.name, None)
        asyncio.get_running_loop().create_task(self._notify())

    async def _close(self, remote: Any) -> None:
        assert self.endpoint is not None
        with contextlib.suppress(Exception):
            await reset_session(self.endpoint.context, remote)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, name: str, timeout: float = 10.0, *, previous: Any = None) -> Any:
        """The session of CPE NAME once it is up (and is not PREVIOUS: for waiting on a re-dial)."""

        async def up() -> Any:
            async with self._changed:
                await self._changed.wait_for(lambda: self.sessions.get(name) not in (None, previous))
            return self.sessions[name]

        return await asyncio.wait_for(up(), timeout)

    async def request(
        self, name: str, method: aiocoap.numbers.codes.Code, path: Sequence[str], body: Any = None, timeout: float = 10
    ) -> Answer:
        """Send one request to CPE NAME over its session; PATH follows /.well-known/dots/."""
        assert self.endpoint is not None
        remote = self.sessions.get(name)
        if remote is None:
            raise CallHomeError(f"CPE {name!r} has no session with this Call Home DOTS client")
        message = aiocoap.Message(code=method, uri_path=(*WELL_KNOWN_DOTS, *path))
        if body is not None:
            message.payload = encode_signal(body)
            message.opt.content_format = DOTS_CBOR
        message.remote = remote
        response = await asyncio.wait_for(self.endpoint.context.request(message).response, timeout)
        code = response.code.dotted
        if response.payload and response.opt.content_format == DOTS_CBOR:
            return Answer(code, decode_signal(response.payload))
        return Answer(code, None, response.payload.decode("utf-8", "replace") or None)

    async def mitigate(
        self,
        name: str,
        mid: int,
        *,
        source_prefixes: Sequence[str],
        target_prefixes: Sequence[str],
        source_port_ranges: Sequence[str] = (),
        source_icmp_type_ranges: Sequence[tuple[int, int]] = (),
        target_port_ranges: Sequence[str] = (),
        target_protocols: Sequence[int] = (),
        lifetime: int = 3600,
        acl_list: Sequence[AclActivation] = (),
    ) -> Answer:
        """PUT /mitigate/cuid=.../mid=MID with the RFC 9066 source members (ports as '80' or '1024-2047'), and the
        RFC 9133 'acl-list' (the CPE's data-channel ACLs of this provider, with the activation types asked for)."""
        sources = self.check_sources(name, source_prefixes)
        targets = Targets(
            target_prefixes=tuple(ipaddress.ip_network(text) for text in target_prefixes),
            target_port_ranges=tuple(PortRange.parse(text) for text in target_port_ranges),
            target_protocols=tuple(target_protocols),
            source_prefixes=sources,
            source_port_ranges=tuple(PortRange.parse(text) for text in source_port_ranges),
            source_icmp_type_ranges=tuple(IcmpTypeRange(lower, upper) for lower, upper in source_icmp_type_ranges),
        )
        entry: dict[str, Any] = {**targets.to_yang(), "lifetime": lifetime}
        if acl_list:
            entry[ACL_LIST] = [acl.to_yang() for acl in acl_list]
        return await self.request(name, aiocoap.PUT, self._mitigate_path(mid), {MITIGATION_SCOPE: {"scope": [entry]}})

    def check_sources(self, name: str, source_prefixes: Sequence[str]) -> tuple[IPNetwork, ...]:
        """The source prefixes, each checked to lie within what CPE NAME may be asked about (RFC 9066 §5.3.1)."""
        peer = self._peer(name)
        try:
            sources = tuple(ipaddress.ip_network(text) for text in source_prefixes)
        except ValueError as error:
            raise CallHomeError(f"source-prefix: {error}") from None
        for prefix in sources:
            if not peer.covers(prefix):
                raise CallHomeError(f"source-prefix {prefix} is outside the prefixes of CPE {name!r} (RFC 9066 §5.3.1)")
        return sources

    async def status(self, name: str, mid: int | None = None) -> Answer:
        self._peer(name)
        return await self.request(name, aiocoap.GET, self._mitigate_path(mid))

    async def withdraw(self, name: str, mid: int) -> Answer:
        self._peer(name)
        return await self.request(name, aiocoap.DELETE, self._mitigate_path(mid))

    async def redirect(
        self, name: str, alternate: str, records: Sequence[str] = (), ttl: int | None = None, timeout: float = 10
    ) -> Answer:
        """Send CPE NAME to another Call Home DOTS client (RFC 9066 §5.2.2): a Non-confirmable PUT /redirect naming
        ALTERNATE (the name its certificate carries), its addresses RECORDS, and how long it holds (TTL)."""
        self._peer(name)
        body = redirect_body(alternate, tuple(records), ttl)
        remote = self.sessions.get(name)
        if remote is None:
            raise CallHomeError(f"CPE {name!r} has no session with this Call Home DOTS client")
        assert self.endpoint is not None
        message = aiocoap.Message(
            code=aiocoap.PUT,
            mtype=aiocoap.NON,
            uri_path=(*WELL_KNOWN_DOTS, "redirect", f"cuid={self.cuid}"),
            payload=encode_signal(body),
            content_format=DOTS_CBOR,
        )
        message.remote = remote
        response = await asyncio.wait_for(self.endpoint.context.request(message).response, timeout)
        return Answer(response.code.dotted, None, response.payload.decode("utf-8", "replace") or None)

    def _peer(self, name: str) -> CpePeer:
        for peer in self.cpes:
            if peer.name == name:
                return peer
        raise CallHomeError(f"no CPE named {name!r} is configured")

    def _mitigate_path(self, mid: int | None) -> tuple[str, ...]:
        path = ("mitigate", f"cuid={self.cuid}")
        return path if mid is None else (*path, f"mid={mid}")

    async def stop(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.shutdown()
