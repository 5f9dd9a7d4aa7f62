"""A DOTS data channel client: mutual TLS, RESTCONF root discovery (RFC 8040 §3.1), RFC 8783 operations."""

from __future__ import annotations

import json
import ssl
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from opendots.config import ClientConfig, TlsFiles
from opendots.errors import RefusedError
from opendots.model.data_channel import MODULE, ROOT
from opendots.pki import cuid_from_certificate

MEDIA_TYPE = "application/yang-data+json"
XRD_NAMESPACE = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"


def one_line(text: str) -> str:
    """TEXT with its line breaks and runs of blanks folded: an operator's error is one line."""
    return " ".join(text.split())


class DataChannelError(RefusedError, RuntimeError):
    """The server refused a request; carries the status and the first `ietf-restconf:errors` entry. Its message
    is one line: `<status> <error-tag>: <error-message>` (RFC 8040 §7.1), with the error-path when there is one."""

    def __init__(self, status: int, error: dict[str, Any] | None) -> None:
        self.status = status
        self.error = error or {}
        tag = self.error.get("error-tag") or ""
        text = one_line(f"{status} {tag}".strip() + f": {self.error.get('error-message') or ''}").rstrip(": ")
        path = self.error.get("error-path")
        super().__init__(f"{text} (at {one_line(str(path))})" if path else text)


@dataclass
class Reply:
    status: int
    body: Any
    location: str | None = None


def client_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    return context


def _first_error(text: str) -> dict[str, Any]:
    """The first `ietf-restconf:errors` entry of an error body; a body that is not one (a proxy's or the HTTP
    layer's own page, e.g. a 408) becomes the error-message, so the operator still gets one line."""
    try:
        parsed = json.loads(text) if text.strip() else {}
        errors = parsed["ietf-restconf:errors"]["error"]
        first = errors[0] if isinstance(errors, list) else errors
        if isinstance(first, dict):
            return first
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return {"error-message": text[:200]}


MAPPING = "ietf-dots-mapping:vendor-mapping"


class DataChannelClient:
    """Use as `async with DataChannelClient(base_url, tls) as client:`; every method raises DataChannelError."""

    def __init__(self, base_url: str, tls: TlsFiles, server_hostname: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tls = tls
        self.cuid = cuid_from_certificate(tls.cert.read_bytes())
        self.server_hostname = server_hostname
        self.root: str | None = None
        self.found: Any = None
        """The RFC 8973 candidate this client was opened on (opendots.data.discovery), when discovered."""
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: ClientConfig) -> DataChannelClient:
        host = config.server_addresses[0] if config.server_addresses else config.server_name
        literal = f"[{host}]" if ":" in host else host
        hostname = config.server_name if config.server_addresses else None
        return cls(f"https://{literal}:{config.data_port}", config.tls, hostname)

    async def __aenter__(self) -> DataChannelClient:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(self.tls))
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- RESTCONF plumbing ---------------------------------------------------------------------------------

    async def discover(self) -> str:
        """The RESTCONF API root from /.well-known/host-meta (the one `restconf` link, RFC 8040 §3.1)."""
        status, text, _ = await self._raw("GET", "/.well-known/host-meta", accept="application/xrd+xml")
        if status != 200:
            raise DataChannelError(status, {"error-message": "host-meta not available"})
        links = [
            link.get("href")
            for link in ElementTree.fromstring(text).iter(f"{XRD_NAMESPACE}Link")
            if link.get("rel") == "restconf"
        ]
        if len(links) != 1 or not links[0]:
            raise DataChannelError(status, {"error-message": f"expected one restconf link, found {len(links)}"})
        self.root = links[0].rstrip("/")
        return self.root

    async def request(self, method: str, path: str, body: Any = None, **query: str) -> Reply:
        """METHOD on a data resource PATH (below {+restconf}/data/ietf-dots-data-channel:dots-data)."""
        if self.root is None:
            await self.discover()
        url = f"{self.root}/data/{ROOT}{path}"
        if query:
            url += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
        payload = json.dumps(body).encode() if body is not None else None
        status, text, headers = await self._raw(method, url, payload)
        if status >= 400:
            raise DataChannelError(status, _first_error(text))
        parsed = json.loads(text) if text.strip() else None
        return Reply(status, parsed, headers.get("Location"))

    async def _raw(
        self, method: str, path: str, payload: bytes | None = None, accept: str = MEDIA_TYPE
    ) -> tuple[int, str, dict[str, str]]:
        assert self._session is not None, "use `async with DataChannelClient(...)`"
        headers = {"Accept": accept}
        if payload is not None:
            headers["Content-Type"] = MEDIA_TYPE
        async with self._session.request(
            method, self.base_url + path, data=payload, headers=headers, server_hostname=self.server_hostname
        ) as response:
            return response.status, await response.text(), dict(response.headers)

    @property
    def _client_path(self) -> str:
        return f"/dots-client={quote(self.cuid, safe='')}"

    # ---- RFC 8783 operations -------------------------------------------------------------------------------

    async def register(self) -> Reply:
        return await self.request("POST", "", {f"{MODULE}:dots-client": [{"cuid": self.cuid}]})

    async def unregister(self) -> Reply:
        return await self.request("DELETE", self._client_path)

    async def capabilities(self) -> dict[str, Any]:
        return (await self.request("GET", "/capabilities")).body[f"{MODULE}:capabilities"]

    async def put_alias(self, alias: dict[str, Any]) -> Reply:
        path = f"{self._client_path}/aliases/alias={quote(alias['name'], safe='')}"
        return await self.request("PUT", path, {f"{MODULE}:alias": [alias]})

    async def create_alias(self, alias: dict[str, Any]) -> Reply:
        return await self.request("POST", self._client_path, {f"{MODULE}:aliases": {"alias": [alias]}})

    async def aliases(self, name: str | None = None, content: str = "all") -> list[dict[str, Any]]:
        path = f"{self._client_path}/aliases" + (f"/alias={quote(name, safe='')}" if name else "")
        body = (await self.request("GET", path, content=content)).body
        return body[f"{MODULE}:aliases"].get("alias", [])

    async def delete_alias(self, name: str) -> Reply:
        return await self.request("DELETE", f"{self._client_path}/aliases/alias={quote(name, safe='')}")

    async def create_acls(self, acls: list[dict[str, Any]], insert: str | None = None, point: str | None = None):
        query = {key: value for key, value in (("insert", insert), ("point", point)) if value}
        return await self.request("POST", self._client_path, {f"{MODULE}:acls": {"acl": acls}}, **query)

    async def put_acl(self, acl: dict[str, Any]) -> Reply:
        path = f"{self._client_path}/acls/acl={quote(acl['name'], safe='')}"
        return await self.request("PUT", path, {f"{MODULE}:acl": [acl]})

    async def acls(self, name: str | None = None, content: str = "all") -> list[dict[str, Any]]:
        path = f"{self._client_path}/acls" + (f"/acl={quote(name, safe='')}" if name else "")
        body = (await self.request("GET", path, content=content)).body
        return body[f"{MODULE}:acls"].get("acl", [])

    async def set_activation(self, name: str, activation_type: str) -> Reply:
        path = f"{self._client_path}/acls/acl={quote(name, safe='')}"
        return await self.request(
            "PATCH", path, {f"{MODULE}:acl": [{"name": name, "activation-type": activation_type}]}
        )

    async def delete_acl(self, name: str) -> Reply:
        return await self.request("DELETE", f"{self._client_path}/acls/acl={quote(name, safe='')}")

    # ---- RFC 9244 §8.1.6 vendor attack mapping ----------------------------------------------------------------

    async def vendor_mapping(self, server: bool = False) -> dict[str, Any] | None:
        """The server's vendor attack mapping (SERVER), or this client's own; None when there is none (404)."""
        path = f"/{MAPPING}" if server else f"{self._client_path}/{MAPPING}"
        try:
            return (await self.request("GET", path)).body[MAPPING]
        except DataChannelError as error:
            if error.status == 404:
                return None
            raise

    async def put_vendor_mapping(self, mapping: dict[str, Any]) -> Reply:
        """Install or replace this client's mapping (the 'vendor-mapping' container: {"vendor": [...]})."""
        return await self.request("PUT", f"{self._client_path}/{MAPPING}", {MAPPING: mapping})

    async def delete_vendor_mapping(self) -> Reply:
        return await self.request("DELETE", f"{self._client_path}/{MAPPING}")
