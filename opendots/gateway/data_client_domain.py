"""The data channel of a client-domain DOTS gateway (RFC 8783 §3.3, RFC 8811 §2.3), the I/O side: each downstream
client's RESTCONF request is planned by opendots.gateway.data_names (renamed, or answered here), sent upstream on
the gateway's one HTTPS client session under its own certificate, and the answer renamed back and filtered.

Registrations and unregistrations are serialized (one lock): the gateway's one upstream registration is created
with the first client's and deleted after the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from opendots.data.core.errors import RestconfError
from opendots.gateway.data_names import (
    DATA_PATH,
    DOTS_CLIENT,
    MODULE,
    ClearOwn,
    Forward,
    Names,
    Register,
    ReplaceOwn,
    downstream_body,
    downstream_errors,
    downstream_text,
    entry_path,
    own_entries,
    own_names,
    plan,
)
from opendots.store.gateway_names import NameStore

if TYPE_CHECKING:
    from opendots.gateway.data_relay import DataRelay

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/yang-data+json"
RESTCONF_DATA = "/restconf/data"
FORWARDED_HEADERS = ("Accept", "If-Match", "If-None-Match")


class Upstream(Exception):
    """An upstream answer that ends the operation: relayed to the client as it is (renamed)."""

    def __init__(self, status: int, payload: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


@dataclass
class ClientDomainData:
    relay: DataRelay
    names: NameStore
    gateway_cuid: str
    _registrations: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handle(self, request: web.Request, peer: str, via: str) -> web.Response:
        names = Names(peer, self.names.prefix(peer), self.gateway_cuid)
        body = await request.read()
        raw_path = request.rel_url.raw_path
        try:
            if not raw_path.startswith(RESTCONF_DATA + "/") and raw_path.rstrip("/") != RESTCONF_DATA:
                # host-meta, the API root, yang-library-version: the gateway's are the upstream server's.
                headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
                status, payload, returned = await self._send(
                    request.method, request.rel_url.raw_path_qs, None, via, headers
                )
                return web.Response(status=status, body=payload or None, headers=returned)
            step = plan(
                request.method,
                raw_path[len(RESTCONF_DATA) :],
                list(request.rel_url.query.items()),
                body,
                request.headers.get("Content-Type"),
                names,
                self.names.registered(peer),
            )
            if isinstance(step, Forward):
                return await self._forward(request, step, names, via)
            if isinstance(step, Register):
                return await self._register(step, names, via)
            if isinstance(step, ReplaceOwn):
                return await self._replace(step, names, via)
            if isinstance(step, ClearOwn):
                await self._clear(step.container, names, via)
                return web.Response(status=204)
            async with self._registrations:
                for container in ("aliases", "acls"):
                    await self._clear(container, names, via)
                self.names.set_registered(peer, False)
                if self.names.registered_count() == 0:
                    path = f"{DATA_PATH}/dots-client={self.gateway_cuid}"
                    await self._data("DELETE", path, None, via, expect=(204, 404))
            return web.Response(status=204)
        except RestconfError as error:
            return _json(error.status, error.body())
        except RecursionError:
            return _json(400, RestconfError("malformed-message", "the body is nested too deeply").body())
        except Upstream as answer:
            renamed = _renamed(answer.payload, answer.status, names)  # bytes: not to be JSON-encoded again
            return web.Response(status=answer.status, body=renamed or None, content_type=MEDIA_TYPE)

    async def _forward(self, request: web.Request, step: Forward, names: Names, via: str) -> web.Response:
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        if step.body is not None:
            headers["Content-Type"] = MEDIA_TYPE
        query = f"?{urlencode(step.query)}" if step.query else ""
        status, payload, returned = await self._send(
            step.method, RESTCONF_DATA + step.path + query, step.body, via, headers
        )
        if "Location" in returned:
            returned["Location"] = downstream_text(returned["Location"], names)
        if status == 404:
            await self._check_registration(via)
        return web.Response(status=status, body=_renamed(payload, status, names) or None, headers=returned)

    async def _check_registration(self, via: str) -> None:
        """After a 404: if the gateway's upstream registration is gone (the upstream server lost its data), so are
        its clients' (RFC 8783 §5.1: each registers again, as it would with that server directly)."""
        path = f"{DATA_PATH}/dots-client={self.gateway_cuid}?depth=1"
        async with self._registrations:
            status, _ = await self._data("GET", path, None, via, expect=(200, 404))
            if status == 404:
                log.warning(
                    "the upstream DOTS server has no registration of this gateway: its clients must register again"
                )
                self.names.forget_registrations()

    async def _register(self, step: Register, names: Names, via: str) -> web.Response:
        """RFC 8783 §5.1 for the client: the gateway's own registration upstream, made once (409: it is there)."""
        async with self._registrations:
            document = {DOTS_CLIENT: [{"cuid": self.gateway_cuid}]}
            await self._data("POST", DATA_PATH, document, via, expect=(201, 409))
            self.names.set_registered(names.cuid, True)
        if not step.created:
            return web.Response(status=204)
        location = f"{RESTCONF_DATA}{DATA_PATH}/dots-client={names.cuid}"
        return web.Response(status=201, headers={"Location": location})

    async def _replace(self, step: ReplaceOwn, names: Names, via: str) -> web.Response:
        """RFC 8040 §4.5 PUT on the client's part: each of its entries created or replaced upstream (ACLs moved to
        the end in body order: their order is the client's, §4.8.5), then its others deleted. A refusal on the way
        puts back what this PUT changed before it (a PUT is all or nothing), then is the client's answer."""
        async with self._registrations:  # one client's replacement is not interleaved with another's
            if step.register:
                document = {DOTS_CLIENT: [{"cuid": self.gateway_cuid}]}
                await self._data("POST", DATA_PATH, document, via, expect=(201, 409))
                self.names.set_registered(names.cuid, True)
            for container, entries in step.entries.items():
                await self._replace_container(container, entries, names, via)
        if not step.created:
            return web.Response(status=204)
        return web.Response(status=201, headers={"Location": f"{RESTCONF_DATA}{DATA_PATH}/dots-client={names.cuid}"})

    async def _replace_container(self, container: str, entries: list[Any], names: Names, via: str) -> None:
        path = f"{DATA_PATH}/dots-client={self.gateway_cuid}/{container}"
        status, payload = await self._data("GET", path + "?content=config", None, via, expect=(200, 404))
        before = {} if status == 404 else own_entries(json.loads(payload), container, names)
        kind = "alias" if container == "aliases" else "acl"
        last = "?insert=last" if container == "acls" else ""
        done: list[str] = []
        try:
            for entry in entries:
                entry_at = entry_path(self.gateway_cuid, container, entry["name"])
                await self._data("PUT", entry_at + last, {f"{MODULE}:{kind}": [entry]}, via, expect=(201, 204))
                done.append(entry["name"])
        except Upstream:
            for name in reversed(done):
                entry_at = entry_path(self.gateway_cuid, container, name)
                with contextlib.suppress(Upstream):
                    if name in before:
                        await self._data("PUT", entry_at, {f"{MODULE}:{kind}": [before[name]]}, via, expect=(204,))
                    else:
                        await self._data("DELETE", entry_at, None, via, expect=(204, 404))
            raise
        kept = {entry["name"] for entry in entries}
        for name in before:
            if name not in kept:
                await self._data("DELETE", entry_path(self.gateway_cuid, container, name), None, via,
                                 expect=(204, 404))  # fmt: skip

    async def _clear(self, container: str, names: Names, via: str) -> None:
        """The client's aliases or ACLs deleted upstream, one by one (the others' stay)."""
        path = f"{DATA_PATH}/dots-client={self.gateway_cuid}/{container}"
        status, payload = await self._data("GET", path + "?content=config", None, via, expect=(200, 404))
        if status == 404:
            return
        for upstream_name in own_names(json.loads(payload), container, names):
            await self._data("DELETE", entry_path(self.gateway_cuid, container, upstream_name), None, via,
                             expect=(204, 404))  # fmt: skip

    async def _data(
        self, method: str, path: str, document: Any, via: str, *, expect: tuple[int, ...]
    ) -> tuple[int, bytes]:
        body = json.dumps(document).encode() if document is not None else None
        headers = {"Accept": MEDIA_TYPE, **({"Content-Type": MEDIA_TYPE} if body else {})}
        status, payload, _ = await self._send(method, RESTCONF_DATA + path, body, via, headers)
        if status not in expect:
            raise Upstream(status, payload)
        return status, payload

    async def _send(
        self, method: str, path_qs: str, body: bytes | None, via: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        relay = self.relay
        assert relay._session is not None
        try:
            async with relay._session.request(
                method,
                relay.upstream_base + path_qs,
                data=body,
                headers={**headers, "Via": via},
                server_hostname=relay.upstream.server_name,
            ) as answer:
                payload = await answer.read()
                returned = {name: answer.headers[name] for name in ("Content-Type", "ETag", "Last-Modified",
                                                                   "Location", "Allow", "Accept-Patch")
                            if name in answer.headers}  # fmt: skip
                relay.counters["relayed"] += 1
                return answer.status, payload, returned
        except (aiohttp.ClientError, TimeoutError) as problem:
            relay.counters["upstream-failed"] += 1
            error = RestconfError("resource-denied", f"the upstream DOTS server cannot be reached: {problem}",
                                  status=503)  # fmt: skip
            raise Upstream(503, json.dumps(error.body()).encode()) from None


def _renamed(payload: bytes, status: int, names: Names) -> bytes:
    if not payload:
        return payload
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return payload
    shown = downstream_errors(document, names) if status >= 400 else downstream_body(document, names)
    return json.dumps(shown, separators=(",", ":")).encode()


def _json(status: int, document: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(document).encode(), content_type=MEDIA_TYPE)
