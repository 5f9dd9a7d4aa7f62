"""The relay's mid mapping (RFC 9132 §4.4.1): each downstream mitigation (client, cuid, mid) accepted upstream is a
`Link` to its upstream (cuid, mid), kept durably (`RelayState`) and indexed so that no request scans every link; the
answers' upstream 'mid's are mapped back and other clients' entries dropped (client-domain)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opendots.gateway.data_names import signal_down
from opendots.gateway.relay_messages import ENDED, SCOPE, Outbound, RelaySettings, scope_entries
from opendots.gateway.telemetry_relay import TelemetryState


@dataclass
class Link:
    """A downstream mitigation and its upstream counterpart, kept while it is accepted upstream."""

    client: str
    cuid: str
    mid: int
    upstream_cuid: str
    upstream_mid: int
    cdid: str | None
    payload: bytes
    """The last accepted PUT body (CBOR): re-sent when the upstream session comes back."""
    accepted_at: float
    expires_at: float | None
    status: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.client, self.cuid, self.mid)

    def upstream_path(self) -> tuple[str, ...]:
        cdid = (f"cdid={self.cdid}",) if self.cdid else ()
        return ("mitigate", *cdid, f"cuid={self.upstream_cuid}", f"mid={self.upstream_mid}")

    def to_json(self, now: float) -> dict[str, Any]:
        left = None if self.expires_at is None else max(0, math.ceil(self.expires_at - now))
        return {
            "client": self.client,
            "downstream": f"cuid={self.cuid}/mid={self.mid}",
            "upstream": "/".join(self.upstream_path()[1:]),
            "status": self.status,
            "lifetime-left": left,
        }


class RelayState(TelemetryState, Protocol):
    """What the relay keeps durably (opendots.gateway.store.RelayStore)."""

    def allocate_mid(self) -> int:
        """A new upstream 'mid', durable before this returns."""
        ...

    def save(self, link: Link) -> None: ...

    def delete(self, key: tuple[str, str, int]) -> None: ...

    def load(self) -> list[Link]: ...


class MidMapping:
    """RelayCore's links and their indexes (a mixin: the state is RelayCore's)."""

    settings: RelaySettings
    state: RelayState
    links: dict[tuple[str, str, int], Link]
    counters: Counter[str]
    _by_upstream: dict[tuple[str, int], Link]
    _by_pair: dict[tuple[str, str], set[int]]
    _cuid_clients: dict[str, Counter[str]]
    _per_client: Counter[str]
    data_names: Callable[[str], str] | None

    @property
    def client_domain(self) -> bool:
        return self.settings.kind == "client-domain"

    def _own_links(self, client: str, cuid: str) -> list[Link]:
        return [self.links[(client, cuid, mid)] for mid in self._by_pair.get((client, cuid), ())]

    def _upstream_mid(self, client: str, cuid: str, mid: int) -> int | None:
        link = self.links.get((client, cuid, mid))
        return None if link is None else link.upstream_mid

    def _downstream_mid(self, client: str, cuid: str, upstream_mid: int) -> int | None:
        link = self._by_upstream.get((self.settings.upstream_cuid, upstream_mid))
        return link.mid if link is not None and link.client == client and link.cuid == cuid else None

    def _accepted(self, sent: Outbound, key: tuple[str, str, int], body: dict[str, Any] | None, now: float) -> None:
        assert sent.upstream_mid is not None and sent.payload is not None and sent.mid is not None
        entries = scope_entries(body)
        lifetime = entries[0].get("lifetime") if entries else None
        expires_at = None if not isinstance(lifetime, int) or lifetime < 0 else now + lifetime
        upstream_cuid = self.settings.upstream_cuid if self.client_domain else sent.cuid
        previous = self.links.get(key)
        link = Link(
            client=sent.client,
            cuid=sent.cuid,
            mid=sent.mid,
            upstream_cuid=upstream_cuid,
            upstream_mid=sent.upstream_mid,
            cdid=sent.cdid,
            payload=previous.payload if sent.reestablish and previous else sent.payload,
            accepted_at=previous.accepted_at if previous is not None else now,
            expires_at=expires_at,
            status=previous.status if previous is not None else None,
        )
        self.state.save(link)
        if previous is not None:
            self._release(previous)
        self._hold(link)
        if sent.reestablish:
            self.counters["reestablished"] += 1

    def _forget(self, key: tuple[str, str, int]) -> None:
        link = self.links.get(key)
        if link is not None:
            self.state.delete(key)
            self._release(link)

    def _hold(self, link: Link) -> None:
        self.links[link.key] = link
        self._by_upstream[(link.upstream_cuid, link.upstream_mid)] = link
        self._by_pair.setdefault((link.client, link.cuid), set()).add(link.mid)
        self._cuid_clients.setdefault(link.cuid, Counter())[link.client] += 1
        self._per_client[link.client] += 1

    def _release(self, link: Link) -> None:
        del self.links[link.key]
        self._by_upstream.pop((link.upstream_cuid, link.upstream_mid), None)
        mids = self._by_pair.get((link.client, link.cuid), set())
        mids.discard(link.mid)
        if not mids:
            self._by_pair.pop((link.client, link.cuid), None)
        self._per_client[link.client] -= 1
        if self._per_client[link.client] <= 0:
            del self._per_client[link.client]
        clients = self._cuid_clients[link.cuid]
        clients[link.client] -= 1
        if clients[link.client] <= 0:
            del clients[link.client]
        if not clients:
            del self._cuid_clients[link.cuid]

    def holds(self, client: str) -> bool:
        """Whether mitigations of CLIENT are held upstream (it is under attack, RFC 9132 §4.5)."""
        return self._per_client[client] > 0

    def _note_statuses(self, sent: Outbound, body: dict[str, Any]) -> None:
        upstream_cuid = self.settings.upstream_cuid if self.client_domain else sent.cuid
        for entry in scope_entries(body):
            link = self._by_upstream.get((upstream_cuid, entry.get("mid")))  # type: ignore[arg-type]
            if link is None or link.client != sent.client:
                continue
            status = entry.get("status")
            if isinstance(status, str):
                link.status = status
                if status in ENDED:
                    self._forget(link.key)

    def _rewrite(self, sent: Outbound, body: dict[str, Any]) -> dict[str, Any] | None:
        """A client-domain answer with the upstream 'mid's mapped back to SENT's client's; entries of other clients
        dropped (None: nothing left of a list that had entries)."""
        if self.data_names is not None:
            body = signal_down(body, self.data_names(sent.client))
        container = body.get(SCOPE)
        if not isinstance(container, dict) or not isinstance(container.get("scope"), list):
            return body
        own = self.settings.upstream_cuid
        kept = []
        for entry in container["scope"]:
            entry = dict(entry)
            if "mid" in entry:
                link = self._by_upstream.get((own, entry["mid"]))
                if link is not None and link.client == sent.client and link.cuid == sent.cuid:
                    entry["mid"] = link.mid
                elif sent.upstream_mid is not None and entry["mid"] == sent.upstream_mid and sent.mid is not None:
                    entry["mid"] = sent.mid  # the answer to a PUT not linked yet (refused, or before _accepted)
                else:
                    continue  # another client's mitigation: never shown to this one
            conflict = entry.get("conflict-information")
            if isinstance(conflict, dict) and isinstance(conflict.get("conflict-scope"), dict):
                scope = dict(conflict["conflict-scope"])
                other = self._by_upstream.get((own, scope.get("mid")))  # type: ignore[arg-type]
                if other is not None and other.client == sent.client:
                    scope["mid"] = other.mid
                else:
                    scope.pop("mid", None)
                entry["conflict-information"] = {**conflict, "conflict-scope": scope}
            kept.append(entry)
        if container["scope"] and not kept:
            return None
        return {**body, SCOPE: {**container, "scope": kept}}

    def expire(self, now: float) -> None:
        for key in [key for key, link in self.links.items() if link.expires_at is not None and link.expires_at <= now]:
            self._forget(key)

    def next_expiry(self) -> float | None:
        return min((link.expires_at for link in self.links.values() if link.expires_at is not None), default=None)

    def status(self, now: float) -> list[dict[str, Any]]:
        return [link.to_json(now) for link in sorted(self.links.values(), key=lambda link: link.key)]
